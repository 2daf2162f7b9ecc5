"""Co-simulation server: a simulated meter's UART on a TCP port.

Any pyserial program reaches it as ``socket://HOST:PORT``, exactly as it would
reach a board's serial port. Like a UART it has one peer at a time: a second
client is refused until the first disconnects. The meter keeps running between
clients, and bytes it sends while nobody is connected are dropped, as a UART with
no cable would drop them.
"""

import logging
import selectors
import socket
import threading

from refmeter.soft.errors import LinkError
from refmeter.soft.transport import Transport

__all__ = ["CoSimServer"]

logger = logging.getLogger(__name__)


class CoSimServer:
    """Bridges ``meter`` (any transport) to TCP clients on ``host:port``.

    ``port`` 0 picks a free port; :attr:`url` says which.
    """

    def __init__(self, meter: Transport, *, host: str = "127.0.0.1", port: int = 7700):
        self._meter = meter
        self._listener = socket.create_server((host, port))
        self._client: socket.socket | None = None
        self._client_lock = threading.Lock()
        self._stopping = threading.Event()
        self._failure: LinkError | None = None
        self._pump = threading.Thread(target=self._meter_to_client, name="cosim-pump", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"socket://{host}:{port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` (or Ctrl-C in the caller); re-raises a simulation failure."""
        self._pump.start()
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.1):
                    if key.fileobj is self._listener:
                        self._accept(selector)
                    else:
                        self._client_to_meter(selector, key.fileobj)
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        """Release the port and the client (not the simulation); after
        :meth:`serve_forever` has returned, when another thread ran it."""
        self.stop()
        if self._pump.is_alive():
            self._pump.join()
        self._drop_client()
        self._listener.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        connection, peer = self._listener.accept()
        with self._client_lock:
            if self._client is not None:
                logger.warning("refusing %s:%d: the meter's UART already has a client", *peer[:2])
                connection.close()
                return
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._client = connection
        selector.register(connection, selectors.EVENT_READ)
        logger.info("client %s:%d connected", *peer[:2])

    def _client_to_meter(self, selector: selectors.BaseSelector, connection) -> None:
        try:
            data = connection.recv(4096)
        except OSError:
            data = b""
        if data:
            try:
                self._meter.write(data)
            except LinkError as error:
                self._fail(error)
            return
        selector.unregister(connection)
        self._drop_client()
        logger.info("client disconnected")

    def _meter_to_client(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self._meter.read(1, timeout=0.05)
                data += self._meter.read(4096, timeout=0)
            except LinkError as error:
                self._fail(error)
                return
            if not data:
                continue
            with self._client_lock:
                if self._client is None:
                    continue
                try:
                    self._client.sendall(data)
                except OSError:
                    pass  # the reader side notices the disconnect

    def _drop_client(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _fail(self, error: LinkError) -> None:
        self._failure = error
        self.stop()
