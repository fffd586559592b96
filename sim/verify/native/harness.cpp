// Native host for the accelerator's Verilated model: an AXI4-Lite host and an AXI4 memory
// around the top, in C++, so that a job runs with no Python on any clock edge.
//
// The job and its results are files (formats in chrysalis/sim/verify/native_job.py, which
// writes the job and reads the results). The memory follows cocotbext-axi's AxiRam cycle for
// cycle (queues of two on every channel, one burst at a time per direction), so the cycle
// counters match a run under the cocotb testbench; the host makes the same register
// accesses in the same order as sim/verify/tb/accelerator.py.
//
// harness_config.h (generated per config) defines TOP (the Verilated class), DATA_WORDS
// (32-bit words per beat), the port accessors get_wdata/set_rdata, the register offsets
// REG_* and the counter table COUNTER_LO[]. harness_mode.h (written after Verilation, from
// the Verilated code) defines ONE_EVAL, and with it ROOT_HEADER, the model's root class.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "verilated.h"
#include "harness_config.h"
#include "harness_mode.h"
#if ONE_EVAL
#include ROOT_HEADER
#endif

namespace {

struct Addr {
    uint64_t id, addr, len, size, burst;
};

struct WBeat {
    uint32_t data[DATA_WORDS];
    uint64_t strb;
    bool last;
};

struct RBeat {
    uint64_t id;
    uint32_t data[DATA_WORDS];
    bool last;
};

// What the DUT drives, sampled just before a rising edge.
struct Sample {
    bool arvalid, rready, awvalid, wvalid, bready;
    Addr ar, aw;
    WBeat w;
};

const size_t QUEUE_LIMIT = 2;   // queue_occupancy_limit of every AxiRam channel
const uint64_t BYTES = DATA_WORDS * 4;

class Memory {
  public:
    Memory(uint64_t bytes) : mem_(bytes, 0) {}
    uint64_t size() const { return mem_.size(); }
    uint8_t *at(uint64_t addr) { return &mem_[addr % mem_.size()]; }
    void write_words(uint64_t addr, const uint32_t *words, size_t count) {
        for (size_t i = 0; i < count; i++)
            for (int b = 0; b < 4; b++) *at(addr + 4 * i + b) = (words[i] >> (8 * b)) & 0xFF;
    }
    void read_words(uint64_t addr, uint32_t *words, size_t count) {
        for (size_t i = 0; i < count; i++) {
            uint32_t v = 0;
            for (int b = 0; b < 4; b++) v |= uint32_t(*at(addr + 4 * i + b)) << (8 * b);
            words[i] = v;
        }
    }

  private:
    std::vector<uint8_t> mem_;
};

// The burst address of beat n (INCR, FIXED or WRAP), as AxiRam steps it.
struct BurstCursor {
    uint64_t cur, lower, upper, step;
    int burst;
    void start(const Addr &a) {
        step = 1ull << a.size;
        cur = (a.addr / step) * step;
        burst = int(a.burst);
        uint64_t total = step * (a.len + 1);
        lower = (a.addr / total) * total;
        upper = lower + total;
    }
    uint64_t word() const { return (cur / BYTES) * BYTES; }
    void next() {
        if (burst == 0) return;   // FIXED
        cur += step;
        if (burst == 2 && cur == upper) cur = lower;
    }
};

class AxiRam {
  public:
    explicit AxiRam(Memory &mem) : mem_(mem) {}

    // One rising edge: the channels' edge handlers see the pre-edge samples, then the read
    // and write processes run on what the handlers queued.
    void edge(const Sample &s) {
        // AR, AW and W sinks: take a beat on valid and ready, then ready unless full.
        if (arready && s.arvalid) ar_q_.push_back(s.ar);
        arready = ar_q_.size() < QUEUE_LIMIT;
        if (awready && s.awvalid) aw_q_.push_back(s.aw);
        awready = aw_q_.size() < QUEUE_LIMIT;
        if (wready && s.wvalid) w_q_.push_back(s.w);
        wready = w_q_.size() < QUEUE_LIMIT;
        // R and B sources: a new beat once the one shown is taken (or none is shown).
        if ((rvalid && s.rready) || !rvalid) {
            if (!r_q_.empty()) {
                r = r_q_.front();
                r_q_.pop_front();
                rvalid = true;
            } else {
                rvalid = false;
            }
        }
        if ((bvalid && s.bready) || !bvalid) {
            if (!b_q_.empty()) {
                bid = b_q_.front();
                b_q_.pop_front();
                bvalid = true;
            } else {
                bvalid = false;
            }
        }
        read_process();
        write_process();
    }

    void reset() {
        ar_q_.clear(); aw_q_.clear(); w_q_.clear(); r_q_.clear(); b_q_.clear();
        arready = awready = wready = rvalid = bvalid = false;
        reading_ = writing_ = false;
    }

    bool arready = false, awready = false, wready = false, rvalid = false, bvalid = false;
    RBeat r{};
    uint64_t bid = 0;

  private:
    void read_process() {
        for (;;) {
            if (!reading_) {
                if (ar_q_.empty()) return;
                rd_ = ar_q_.front();
                ar_q_.pop_front();
                rd_cursor_.start(rd_);
                rd_beat_ = 0;
                reading_ = true;
            }
            if (r_q_.size() >= QUEUE_LIMIT) return;
            RBeat beat{};
            beat.id = rd_.id;
            beat.last = rd_beat_ == rd_.len;
            mem_.read_words(rd_cursor_.word(), beat.data, DATA_WORDS);
            r_q_.push_back(beat);
            rd_cursor_.next();
            if (rd_beat_++ == rd_.len) reading_ = false;
        }
    }

    void write_process() {
        for (;;) {
            if (!writing_) {
                if (aw_q_.empty()) return;
                wr_ = aw_q_.front();
                aw_q_.pop_front();
                wr_cursor_.start(wr_);
                wr_beat_ = 0;
                writing_ = true;
            }
            if (wr_beat_ <= wr_.len) {
                if (w_q_.empty()) return;
                WBeat beat = w_q_.front();
                w_q_.pop_front();
                uint64_t base = wr_cursor_.word();
                for (uint64_t i = 0; i < BYTES; i++)
                    if (beat.strb >> i & 1)
                        *mem_.at(base + i) = (beat.data[i / 4] >> (8 * (i % 4))) & 0xFF;
                wr_cursor_.next();
                wr_beat_++;
                continue;
            }
            if (b_q_.size() >= QUEUE_LIMIT) return;
            b_q_.push_back(wr_.id);
            writing_ = false;
        }
    }

    Memory &mem_;
    std::deque<Addr> ar_q_, aw_q_;
    std::deque<WBeat> w_q_;
    std::deque<RBeat> r_q_;
    std::deque<uint64_t> b_q_;
    bool reading_ = false, writing_ = false;
    Addr rd_{}, wr_{};
    BurstCursor rd_cursor_{}, wr_cursor_{};
    uint64_t rd_beat_ = 0, wr_beat_ = 0;
};

class Harness {
  public:
    Harness(uint64_t mem_bytes) : ctx_(new VerilatedContext), mem_(mem_bytes), ram_(mem_) {
        top_.reset(new TOP(ctx_.get()));
    }
    ~Harness() { top_->final(); }

    Memory &memory() { return mem_; }

    // One clock cycle: sample, rising edge, the memory's response, falling edge.
    //
    // With ONE_EVAL the falling edge is not evaluated: the model is only told, at the next
    // rising edge, that the clock was low (the one edge detector Verilator made for it), and
    // that eval() takes the inputs driven since then before the edge, as a settling eval()
    // would have. native_job sets ONE_EVAL only when the Verilated code shows that this
    // gives the same cycles: the rising clock edge is the model's only trigger, and no
    // output sampled here (m_axi_*, irq) is written by its input-combinational region, so
    // the outputs read before the next edge are those a settling eval() would give. That
    // eval is about 6% of a cycle's time. The register accesses settle with eval() as before.
    void cycle() {
        Sample s = sample();
        top_->clk = 1;
#if ONE_EVAL
        top_->rootp->__Vtrigprevexpr___TOP__clk__0 = 0;
#endif
        top_->eval();
        ram_.edge(s);
        drive();
        top_->clk = 0;
#if !ONE_EVAL
        top_->eval();
#endif
        cycles_++;
    }

    void reset() {
        top_->rst = 1;
        ram_.reset();
        drive();
        top_->clk = 0;
        top_->eval();
        for (int i = 0; i < 4; i++) cycle();
        top_->rst = 0;
        for (int i = 0; i < 2; i++) cycle();
    }

    // AXI4-Lite register write and read; return the response (0: OKAY).
    int write(uint32_t offset, uint32_t value) {
        top_->s_axil_awaddr = offset;
        top_->s_axil_awprot = 0;
        top_->s_axil_wdata = value;
        top_->s_axil_wstrb = 0xF;
        top_->s_axil_awvalid = 1;
        top_->s_axil_wvalid = 1;
        top_->s_axil_bready = 1;
        bool aw_done = false, w_done = false;
        for (uint64_t n = 0;; n++) {
            check_bound(n, "register write");
            top_->eval();
            bool aw = top_->s_axil_awvalid && top_->s_axil_awready;
            bool w = top_->s_axil_wvalid && top_->s_axil_wready;
            bool b = top_->s_axil_bvalid;
            int resp = top_->s_axil_bresp;
            cycle();
            if (aw) { aw_done = true; top_->s_axil_awvalid = 0; }
            if (w) { w_done = true; top_->s_axil_wvalid = 0; }
            if (aw_done && w_done && b) {
                top_->s_axil_bready = 0;
                top_->eval();
                return resp;
            }
        }
    }

    uint32_t read(uint32_t offset) {
        top_->s_axil_araddr = offset;
        top_->s_axil_arprot = 0;
        top_->s_axil_arvalid = 1;
        top_->s_axil_rready = 1;
        for (uint64_t n = 0;; n++) {
            check_bound(n, "register read");
            top_->eval();
            bool ar = top_->s_axil_arvalid && top_->s_axil_arready;
            bool r = top_->s_axil_rvalid && top_->s_axil_rready;
            uint32_t data = top_->s_axil_rdata;
            cycle();
            if (ar) top_->s_axil_arvalid = 0;
            if (r) {
                top_->s_axil_rready = 0;
                top_->eval();
                return data;
            }
        }
    }

    uint64_t read64(uint32_t lo) { return read(lo) | uint64_t(read(lo + 4)) << 32; }
    void write64(uint32_t lo, uint64_t value) {
        expect_okay(write(lo, uint32_t(value)), lo);
        expect_okay(write(lo + 4, uint32_t(value >> 32)), lo + 4);
    }
    void write32(uint32_t offset, uint32_t value) { expect_okay(write(offset, value), offset); }

    // Wait for irq at most max_cycles cycles; false on a time-out.
    bool wait_irq(uint64_t max_cycles) {
        for (uint64_t n = 0; n < max_cycles; n++) {
            if (top_->irq) return true;
            cycle();
        }
        return top_->irq;
    }

  private:
    Sample sample() {
        Sample s{};
        s.arvalid = top_->m_axi_arvalid;
        s.ar = {uint64_t(top_->m_axi_arid), uint64_t(top_->m_axi_araddr),
                uint64_t(top_->m_axi_arlen), uint64_t(top_->m_axi_arsize),
                uint64_t(top_->m_axi_arburst)};
        s.rready = top_->m_axi_rready;
        s.awvalid = top_->m_axi_awvalid;
        s.aw = {uint64_t(top_->m_axi_awid), uint64_t(top_->m_axi_awaddr),
                uint64_t(top_->m_axi_awlen), uint64_t(top_->m_axi_awsize),
                uint64_t(top_->m_axi_awburst)};
        s.wvalid = top_->m_axi_wvalid;
        get_wdata(top_.get(), s.w.data);
        s.w.strb = uint64_t(top_->m_axi_wstrb);
        s.w.last = top_->m_axi_wlast;
        s.bready = top_->m_axi_bready;
        return s;
    }

    void drive() {
        top_->m_axi_arready = ram_.arready;
        top_->m_axi_awready = ram_.awready;
        top_->m_axi_wready = ram_.wready;
        top_->m_axi_rvalid = ram_.rvalid;
        top_->m_axi_rid = ram_.r.id;
        set_rdata(top_.get(), ram_.r.data);
        top_->m_axi_rlast = ram_.r.last;
        top_->m_axi_rresp = 0;
        top_->m_axi_bvalid = ram_.bvalid;
        top_->m_axi_bid = ram_.bid;
        top_->m_axi_bresp = 0;
    }

    void check_bound(uint64_t n, const char *what) {
        if (n > 100000) throw std::runtime_error(std::string(what) + " never answered");
    }

    void expect_okay(int resp, uint32_t offset) {
        if (resp != 0) {
            char text[96];
            std::snprintf(text, sizeof text, "register write at 0x%x answered %d", offset, resp);
            throw std::runtime_error(text);
        }
    }

    std::unique_ptr<VerilatedContext> ctx_;
    Memory mem_;
    AxiRam ram_;
    std::unique_ptr<TOP> top_;
    uint64_t cycles_ = 0;
};

// Little-endian u64/u32 streams.
struct Reader {
    FILE *f;
    uint64_t u64() {
        uint64_t v;
        if (std::fread(&v, 8, 1, f) != 1) throw std::runtime_error("job file is truncated");
        return v;
    }
    void words(uint32_t *out, size_t n) {
        if (n && std::fread(out, 4, n, f) != n) throw std::runtime_error("job file is truncated");
    }
};

struct Writer {
    FILE *f;
    void u64(uint64_t v) { std::fwrite(&v, 8, 1, f); }
    void words(const uint32_t *in, size_t n) { if (n) std::fwrite(in, 4, n, f); }
};

int run(const char *job_path, const char *out_path) {
    FILE *jf = std::fopen(job_path, "rb");
    if (!jf) throw std::runtime_error(std::string("cannot open ") + job_path);
    Reader in{jf};
    char magic[8];
    if (std::fread(magic, 1, 8, jf) != 8 || std::memcmp(magic, "CHRJOB01", 8))
        throw std::runtime_error("not a job file");
    uint64_t mem_base = in.u64(), mem_bytes = in.u64(), n_image = in.u64();
    std::vector<uint32_t> image(n_image);
    in.words(image.data(), n_image);

    Harness h(mem_bytes);
    h.reset();
    h.memory().write_words(mem_base, image.data(), n_image);

    FILE *of = std::fopen(out_path, "wb");
    if (!of) throw std::runtime_error(std::string("cannot write ") + out_path);
    Writer out{of};
    std::fwrite("CHRRES01", 1, 8, of);
    uint64_t n_runs = in.u64();
    out.u64(n_runs);
    for (uint64_t i = 0; i < n_runs; i++) {
        uint64_t cmd_base = in.u64(), cmd_count = in.u64(), dma_base = in.u64();
        uint64_t dma_last = in.u64(), max_cycles = in.u64(), dump = in.u64();
        uint64_t dual_seed = in.u64(), reuse_strength = in.u64(), n_writes = in.u64();
        for (uint64_t j = 0; j < n_writes; j++) {
            uint64_t addr = in.u64(), n = in.u64();
            std::vector<uint32_t> words(n);
            in.words(words.data(), n);
            h.memory().write_words(addr, words.data(), n);
        }
        h.write64(REG_DMA_BASE_LO, dma_base);
        h.write64(REG_DMA_LAST_LO, dma_last);
        h.write32(REG_DUAL_SEED, uint32_t(dual_seed));
        h.write32(REG_REUSE_STRENGTH, uint32_t(reuse_strength));
        h.write64(REG_CMD_BASE_LO, cmd_base);
        h.write32(REG_CMD_COUNT, uint32_t(cmd_count));
        h.write32(REG_IRQ_ENABLE, 0x3);
        h.write32(REG_IRQ_STATUS, 0x3);
        uint64_t before = h.read64(REG_CYCLES_LO);
        h.write32(REG_DOORBELL, 1);
        auto t0 = std::chrono::steady_clock::now();
        bool done = h.wait_irq(max_cycles);
        double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        uint64_t status = h.read(REG_STATUS);
        if (!done) {
            std::fprintf(stderr, "run %llu: no interrupt within %llu cycles of the doorbell "
                         "(STATUS 0x%llx)\n", (unsigned long long)i,
                         (unsigned long long)max_cycles, (unsigned long long)status);
            std::fclose(of);
            return 3;
        }
        uint64_t code = h.read(REG_ERROR_CODE), index = h.read(REG_ERROR_INDEX);
        h.write32(REG_IRQ_STATUS, 0x3);
        uint64_t cycles = h.read64(REG_CYCLES_LO) - before;
        out.u64(status); out.u64(code); out.u64(index); out.u64(cycles);
        double wall_copy = wall;
        std::fwrite(&wall_copy, 8, 1, of);
        out.u64(N_COUNTERS);
        for (size_t c = 0; c < N_COUNTERS; c++) out.u64(h.read64(COUNTER_LO[c]));
        out.u64(dump);
        if (dump) {
            std::vector<uint32_t> now(n_image);
            h.memory().read_words(mem_base, now.data(), n_image);
            out.words(now.data(), n_image);
        }
    }
    std::fclose(jf);
    std::fclose(of);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s JOB RESULT\n", argv[0]);
        return 2;
    }
    try {
        return run(argv[1], argv[2]);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
