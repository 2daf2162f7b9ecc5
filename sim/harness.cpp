// Runs the refmeter simulation harness freely, bridging its host-side byte
// streams to this process's stdin (bytes to the meter) and stdout (bytes from
// it), and handing its ADC model a sample set whenever one is due, read from a
// pipe of its own. Stops when stdin is closed. Built by refmeter.sim.verilator.
//
// Usage: refmeter_sim CYCLES_PER_SAMPLE SAMPLES_FD SEAL_OPEN
//   CYCLES_PER_SAMPLE  clock cycles between sample sets (a real number)
//   SAMPLES_FD         file descriptor of sample sets: a little-endian int32 per
//                      ADC channel (4 per ADC) each, then one of the panel's
//                      inputs for the harness's panel port
//   SEAL_OPEN          0 or 1, the meter's seal input
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <fcntl.h>
#include <type_traits>
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

static bool read_all(int fd, void *buffer, size_t size) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, static_cast<uint8_t *>(buffer) + done, size - done);
        if (n == 0 || (n < 0 && errno != EINTR)) return false;
        if (n > 0) done += n;
    }
    return true;
}

// The ADC channels of the harness: 24-bit codes, four per ADC, in a payload of
// 32-bit words.
template <typename Payload> struct PayloadWords;
template <std::size_t WORDS> struct PayloadWords<VlWide<WORDS>> {
    static constexpr std::size_t value = WORDS;
};
static constexpr std::size_t WORDS =
    PayloadWords<std::remove_reference_t<decltype(Vsim_harness::PORT(adc_codes, payload))>>::value;
static constexpr std::size_t CHANNELS = WORDS * 32 / 24;

// Signed 24-bit codes, channel 0 in the low bits, as the payload.
static void pack_codes(const int32_t codes[CHANNELS], VlWide<WORDS> &payload) {
    uint8_t bytes[4 * WORDS];
    for (std::size_t channel = 0; channel < CHANNELS; ++channel)
        for (int byte = 0; byte < 3; ++byte)
            bytes[3 * channel + byte] = static_cast<uint8_t>(codes[channel] >> (8 * byte));
    for (std::size_t word = 0; word < WORDS; ++word)
        payload[word] = bytes[4 * word] | bytes[4 * word + 1] << 8 |
                        bytes[4 * word + 2] << 16 | static_cast<uint32_t>(bytes[4 * word + 3]) << 24;
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
    if (argc != 4) {
        fprintf(stderr, "usage: %s CYCLES_PER_SAMPLE SAMPLES_FD SEAL_OPEN\n", argv[0]);
        return 2;
    }
    const double cycles_per_sample = atof(argv[1]);
    const int samples_fd = atoi(argv[2]);
    VerilatedContext context;
    Vsim_harness top{&context};
    top.seal_open = atoi(argv[3]) != 0;

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

    double next_sample = 0;
    for (uint64_t cycle = 0;; ++cycle) {
        top.PORT(adc_codes, valid) = cycle >= next_sample;
        if (top.PORT(adc_codes, valid)) {  // the model is always ready
            int32_t codes[CHANNELS + 1];  // the channels, then the panel
            if (!read_all(samples_fd, codes, sizeof codes)) return 1;
            pack_codes(codes, top.PORT(adc_codes, payload));
            top.panel = codes[CHANNELS];
            next_sample += cycles_per_sample;
        }
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
