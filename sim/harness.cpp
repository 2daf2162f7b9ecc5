// Runs the refmeter simulation harness freely, bridging its host-side byte
// streams to this process's stdin (bytes to the meter) and stdout (bytes from
// it). Stops when stdin is closed. Built by refmeter.sim.verilator.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

#include "Vsim_harness.h"
#include "verilated.h"

// Verilator escapes the "__" that Amaranth puts between an interface's name and
// its member's as "___05F": PORT(to_meter, valid) is the `to_meter__valid` port.
#define PORT(interface, member) interface##___05F##member

// Cycles between looks at the pipes: a byte on the simulated UART takes 80.
static const uint64_t POLL_CYCLES = 64;

static void tick(Vsim_harness &top) {
    top.clk = 0;
    top.eval();
    top.clk = 1;
    top.eval();
}

static bool write_all(const std::vector<uint8_t> &data) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = write(STDOUT_FILENO, data.data() + done, data.size() - done);
        if (n < 0 && errno != EINTR) return false;
        if (n > 0) done += n;
    }
    return true;
}

int main(int argc, char **argv) {
    VerilatedContext context;
    context.commandArgs(argc, argv);
    Vsim_harness top{&context};

    fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
    std::deque<uint8_t> to_meter;
    std::vector<uint8_t> from_meter;
    uint8_t buffer[4096];

    top.rst = 1;
    tick(top);
    top.rst = 0;
    top.PORT(from_meter, ready) = 1;
    // Start the meter's clock at the host's time (the preset port is always ready).
    top.PORT(utc_preset, payload) = static_cast<uint32_t>(time(nullptr));
    top.PORT(utc_preset, valid) = 1;
    tick(top);
    top.PORT(utc_preset, valid) = 0;

    for (uint64_t cycle = 0;; ++cycle) {
        if (cycle % POLL_CYCLES == 0) {
            ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
            if (n == 0) break;  // the host closed the link
            if (n < 0 && errno != EAGAIN && errno != EINTR) return 1;
            if (n > 0) to_meter.insert(to_meter.end(), buffer, buffer + n);
            if (!from_meter.empty()) {
                if (!write_all(from_meter)) return 1;
                from_meter.clear();
            }
        }
        top.PORT(to_meter, valid) = !to_meter.empty();
        if (!to_meter.empty()) top.PORT(to_meter, payload) = to_meter.front();
        top.clk = 0;
        top.eval();
        // Handshakes complete at the rising edge, with the values settled before it.
        bool sent = top.PORT(to_meter, valid) && top.PORT(to_meter, ready);
        bool received = top.PORT(from_meter, valid);
        uint8_t byte = top.PORT(from_meter, payload);
        top.clk = 1;
        top.eval();
        if (sent) to_meter.pop_front();
        if (received) from_meter.push_back(byte);
    }
    top.final();
    return 0;
}
