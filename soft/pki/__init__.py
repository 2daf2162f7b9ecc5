"""The meter's PKI and secure command path (docs/pki.md).

* :mod:`.roles`: the parties, key usages, and which gateware slot each party's key
  agreement fills;
* :mod:`.certificates`, :mod:`.validation`, :mod:`.demo`: the certificate profile,
  path validation with CRLs, and a demonstration PKI;
* :mod:`.agreement`: ECDH and the SP 800-56A KDF into the gateware's AES-128 keys;
* :mod:`.message`, :mod:`.access`, :mod:`.anchors`, :mod:`.counters`, :mod:`.control`:
  signed commands, who may do what, trust anchors, durable counters, and the
  control module that checks and dispatches commands;
* :mod:`.firmware`, :mod:`.slots`: signed images and A/B slots with fallback.
"""
