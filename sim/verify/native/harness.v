// Native host for the accelerator's Verilog under Icarus: an AXI4-Lite host and an AXI4
// memory in Verilog around the emitted top, so that a job runs with no Python on any clock
// edge. It is the Verilog twin of harness.cpp and follows it step for step.
//
// The job and its results are files (formats in chrysalis/sim/verify/native_job.py, which
// writes the job and reads the results); the folder holding them comes as +job=FOLDER. The
// memory follows cocotbext-axi's AxiRam cycle for cycle (queues of two on every channel,
// one burst at a time per direction), so the cycle counters match a run under the cocotb
// testbench; the host makes the same register accesses in the same order as
// sim/verify/tb/accelerator.py.
//
// One process makes every event: it samples the top's outputs, raises the clock, lets the
// top settle, steps the memory on the samples and drives its answers, then lowers the
// clock, as harness.cpp does around Verilator's eval(). The clock is no free-running
// `always`, so no two processes ever race at an edge. Delays are one time unit: the unit
// is never seen, but every module must have one, so this file (compiled first) sets the
// emitted top's, which a top without its own `timescale inherits.
//
// harness_config.vh (generated per config) defines CHR_TOP (the top's module name), the
// port widths CHR_DATA_WIDTH, CHR_ADDR_WIDTH, CHR_ID_WIDTH and CHR_REG_ADDR_WIDTH, the
// memory array's size CHR_MEM_WORDS, the register offsets CHR_REG_*, the interrupt causes
// CHR_IRQ_BOTH, and the counter table CHR_N_COUNTERS and CHR_COUNTER_LO.

`timescale 1ns / 1ps
`include "harness_config.vh"

module chrysalis_harness;

localparam DATA_WIDTH = `CHR_DATA_WIDTH;
localparam DATA_WORDS = DATA_WIDTH / 32;
localparam STRB_WIDTH = DATA_WIDTH / 8;
localparam ADDR_WIDTH = `CHR_ADDR_WIDTH;
localparam ID_WIDTH = `CHR_ID_WIDTH;
localparam REG_WIDTH = `CHR_REG_ADDR_WIDTH;
localparam MEM_WORDS = `CHR_MEM_WORDS;
localparam QUEUE_LIMIT = 2;     // queue_occupancy_limit of every AxiRam channel
localparam BOUND = 100000;      // cycles a register access may take before it counts as lost

// ---- The top and the wires around it -----------------------------------------------------

reg clk, rst;
reg [REG_WIDTH-1:0] s_axil_awaddr, s_axil_araddr;
reg [2:0] s_axil_awprot, s_axil_arprot;
reg [31:0] s_axil_wdata;
reg [3:0] s_axil_wstrb;
reg s_axil_awvalid, s_axil_wvalid, s_axil_bready, s_axil_arvalid, s_axil_rready;
wire s_axil_awready, s_axil_wready, s_axil_bvalid, s_axil_arready, s_axil_rvalid;
wire [1:0] s_axil_bresp, s_axil_rresp;
wire [31:0] s_axil_rdata;

// The memory's side: these registers are its state and what it shows the top.
reg m_axi_arready, m_axi_awready, m_axi_wready, m_axi_rvalid, m_axi_bvalid, m_axi_rlast;
reg [ID_WIDTH-1:0] m_axi_rid, m_axi_bid;
reg [DATA_WIDTH-1:0] m_axi_rdata;
reg [1:0] m_axi_rresp, m_axi_bresp;
wire [ID_WIDTH-1:0] m_axi_arid, m_axi_awid;
wire [ADDR_WIDTH-1:0] m_axi_araddr, m_axi_awaddr;
wire [7:0] m_axi_arlen, m_axi_awlen;
wire [2:0] m_axi_arsize, m_axi_awsize, m_axi_arprot, m_axi_awprot;
wire [1:0] m_axi_arburst, m_axi_awburst;
wire [3:0] m_axi_arcache, m_axi_awcache;
wire m_axi_arlock, m_axi_awlock, m_axi_arvalid, m_axi_awvalid, m_axi_rready;
wire [DATA_WIDTH-1:0] m_axi_wdata;
wire [STRB_WIDTH-1:0] m_axi_wstrb;
wire m_axi_wlast, m_axi_wvalid, m_axi_bready;
wire irq;

`CHR_TOP dut (
    .clk(clk), .rst(rst),
    .s_axil_awaddr(s_axil_awaddr), .s_axil_awprot(s_axil_awprot),
    .s_axil_awvalid(s_axil_awvalid), .s_axil_awready(s_axil_awready),
    .s_axil_wdata(s_axil_wdata), .s_axil_wstrb(s_axil_wstrb), .s_axil_wvalid(s_axil_wvalid),
    .s_axil_wready(s_axil_wready), .s_axil_bresp(s_axil_bresp),
    .s_axil_bvalid(s_axil_bvalid), .s_axil_bready(s_axil_bready),
    .s_axil_araddr(s_axil_araddr), .s_axil_arprot(s_axil_arprot),
    .s_axil_arvalid(s_axil_arvalid), .s_axil_arready(s_axil_arready),
    .s_axil_rdata(s_axil_rdata), .s_axil_rresp(s_axil_rresp), .s_axil_rvalid(s_axil_rvalid),
    .s_axil_rready(s_axil_rready),
    .m_axi_awid(m_axi_awid), .m_axi_awaddr(m_axi_awaddr), .m_axi_awlen(m_axi_awlen),
    .m_axi_awsize(m_axi_awsize), .m_axi_awburst(m_axi_awburst), .m_axi_awlock(m_axi_awlock),
    .m_axi_awcache(m_axi_awcache), .m_axi_awprot(m_axi_awprot),
    .m_axi_awvalid(m_axi_awvalid), .m_axi_awready(m_axi_awready),
    .m_axi_arid(m_axi_arid), .m_axi_araddr(m_axi_araddr), .m_axi_arlen(m_axi_arlen),
    .m_axi_arsize(m_axi_arsize), .m_axi_arburst(m_axi_arburst), .m_axi_arlock(m_axi_arlock),
    .m_axi_arcache(m_axi_arcache), .m_axi_arprot(m_axi_arprot),
    .m_axi_arvalid(m_axi_arvalid), .m_axi_arready(m_axi_arready),
    .m_axi_wdata(m_axi_wdata), .m_axi_wstrb(m_axi_wstrb), .m_axi_wlast(m_axi_wlast),
    .m_axi_wvalid(m_axi_wvalid), .m_axi_wready(m_axi_wready),
    .m_axi_bid(m_axi_bid), .m_axi_bresp(m_axi_bresp), .m_axi_bvalid(m_axi_bvalid),
    .m_axi_bready(m_axi_bready),
    .m_axi_rid(m_axi_rid), .m_axi_rdata(m_axi_rdata), .m_axi_rresp(m_axi_rresp),
    .m_axi_rlast(m_axi_rlast), .m_axi_rvalid(m_axi_rvalid), .m_axi_rready(m_axi_rready),
    .irq(irq)
);

// ---- The memory: 32-bit words, byte address modulo mem_bytes --------------------------------

// Two-state words: four bytes each in vvp, and never X. Addresses wrap at the job's
// mem_bytes (a multiple of 4096, so of every beat), which MEM_WORDS is at least.
bit [31:0] mem [0:MEM_WORDS-1];
reg [63:0] mem_bytes;

function [63:0] word_index(input [63:0] addr);
    word_index = (addr % mem_bytes) >> 2;
endfunction

// ---- The AXI4 RAM, as harness.cpp's AxiRam -------------------------------------------------

// What the top drives, sampled just before a rising edge.
reg s_arvalid, s_rready, s_awvalid, s_wvalid, s_bready;
reg [63:0] s_ar_id, s_ar_addr, s_ar_len, s_ar_size, s_ar_burst;
reg [63:0] s_aw_id, s_aw_addr, s_aw_len, s_aw_size, s_aw_burst;
reg [DATA_WIDTH-1:0] s_w_data;
reg [STRB_WIDTH-1:0] s_w_strb;

// The queues, two entries each; entry 0 is the front.
reg [63:0] ar_id [0:1], ar_addr [0:1], ar_len [0:1], ar_size [0:1], ar_burst [0:1];
reg [63:0] aw_id [0:1], aw_addr [0:1], aw_len [0:1], aw_size [0:1], aw_burst [0:1];
reg [DATA_WIDTH-1:0] w_data [0:1];
reg [STRB_WIDTH-1:0] w_strb [0:1];
reg [63:0] r_id [0:1];
reg [DATA_WIDTH-1:0] r_data [0:1];
reg r_last [0:1];
reg [63:0] b_id [0:1];
integer ar_n, aw_n, w_n, r_n, b_n;

// The burst in progress in each direction and its address cursor (BurstCursor).
reg reading, writing;
reg [63:0] rd_id, rd_len, rd_beat, rd_cur, rd_lower, rd_upper, rd_step, rd_burst;
reg [63:0] wr_id, wr_len, wr_beat, wr_cur, wr_lower, wr_upper, wr_step, wr_burst;

task sample;
    begin
        s_arvalid = m_axi_arvalid;
        s_ar_id = m_axi_arid; s_ar_addr = m_axi_araddr; s_ar_len = m_axi_arlen;
        s_ar_size = m_axi_arsize; s_ar_burst = m_axi_arburst;
        s_rready = m_axi_rready;
        s_awvalid = m_axi_awvalid;
        s_aw_id = m_axi_awid; s_aw_addr = m_axi_awaddr; s_aw_len = m_axi_awlen;
        s_aw_size = m_axi_awsize; s_aw_burst = m_axi_awburst;
        s_wvalid = m_axi_wvalid;
        s_w_data = m_axi_wdata;
        s_w_strb = m_axi_wstrb;
        s_bready = m_axi_bready;
    end
endtask

// BurstCursor::start for the read (rd_*) and the write (wr_*) burst.
task start_read(input [63:0] addr, input [63:0] len, input [63:0] size, input [63:0] burst);
    reg [63:0] total;
    begin
        rd_step = 64'd1 << size;
        rd_cur = (addr / rd_step) * rd_step;
        rd_burst = burst;
        total = rd_step * (len + 1);
        rd_lower = (addr / total) * total;
        rd_upper = rd_lower + total;
    end
endtask

task start_write(input [63:0] addr, input [63:0] len, input [63:0] size, input [63:0] burst);
    reg [63:0] total;
    begin
        wr_step = 64'd1 << size;
        wr_cur = (addr / wr_step) * wr_step;
        wr_burst = burst;
        total = wr_step * (len + 1);
        wr_lower = (addr / total) * total;
        wr_upper = wr_lower + total;
    end
endtask

// BurstCursor::next: FIXED stays, INCR steps, WRAP steps and wraps.
task next_read;
    if (rd_burst != 0) begin
        rd_cur = rd_cur + rd_step;
        if (rd_burst == 2 && rd_cur == rd_upper) rd_cur = rd_lower;
    end
endtask

task next_write;
    if (wr_burst != 0) begin
        wr_cur = wr_cur + wr_step;
        if (wr_burst == 2 && wr_cur == wr_upper) wr_cur = wr_lower;
    end
endtask

task read_process;
    reg more;
    reg [63:0] base;
    reg [DATA_WIDTH-1:0] data;
    integer i;
    begin
        more = 1;
        while (more) begin
            if (!reading) begin
                if (ar_n == 0) more = 0;
                else begin
                    rd_id = ar_id[0];
                    rd_len = ar_len[0];
                    start_read(ar_addr[0], ar_len[0], ar_size[0], ar_burst[0]);
                    ar_id[0] = ar_id[1]; ar_addr[0] = ar_addr[1]; ar_len[0] = ar_len[1];
                    ar_size[0] = ar_size[1]; ar_burst[0] = ar_burst[1];
                    ar_n = ar_n - 1;
                    rd_beat = 0;
                    reading = 1;
                end
            end
            if (more && r_n >= QUEUE_LIMIT) more = 0;
            if (more) begin
                base = (rd_cur / STRB_WIDTH) * STRB_WIDTH;
                for (i = 0; i < DATA_WORDS; i = i + 1)
                    data[32 * i +: 32] = mem[word_index(base + 4 * i)];
                r_id[r_n] = rd_id;
                r_data[r_n] = data;
                r_last[r_n] = rd_beat == rd_len;
                r_n = r_n + 1;
                next_read;
                if (rd_beat == rd_len) reading = 0;
                rd_beat = rd_beat + 1;
            end
        end
    end
endtask

task write_process;
    reg more;
    reg [63:0] base, index;
    reg [DATA_WIDTH-1:0] data;
    reg [STRB_WIDTH-1:0] strb;
    reg [31:0] mask;
    integer i, b;
    begin
        more = 1;
        while (more) begin
            if (!writing) begin
                if (aw_n == 0) more = 0;
                else begin
                    wr_id = aw_id[0];
                    wr_len = aw_len[0];
                    start_write(aw_addr[0], aw_len[0], aw_size[0], aw_burst[0]);
                    aw_id[0] = aw_id[1]; aw_addr[0] = aw_addr[1]; aw_len[0] = aw_len[1];
                    aw_size[0] = aw_size[1]; aw_burst[0] = aw_burst[1];
                    aw_n = aw_n - 1;
                    wr_beat = 0;
                    writing = 1;
                end
            end
            if (more) begin
                if (wr_beat <= wr_len) begin
                    if (w_n == 0) more = 0;
                    else begin
                        data = w_data[0];
                        strb = w_strb[0];
                        w_data[0] = w_data[1]; w_strb[0] = w_strb[1];
                        w_n = w_n - 1;
                        base = (wr_cur / STRB_WIDTH) * STRB_WIDTH;
                        for (i = 0; i < DATA_WORDS; i = i + 1) begin
                            for (b = 0; b < 4; b = b + 1)
                                mask[8 * b +: 8] = {8{strb[4 * i + b]}};
                            if (mask != 0) begin
                                index = word_index(base + 4 * i);
                                mem[index] = (mem[index] & ~mask) | (data[32 * i +: 32] & mask);
                            end
                        end
                        next_write;
                        wr_beat = wr_beat + 1;
                    end
                end else if (b_n >= QUEUE_LIMIT) more = 0;
                else begin
                    b_id[b_n] = wr_id;
                    b_n = b_n + 1;
                    writing = 0;
                end
            end
        end
    end
endtask

// One rising edge: the channels' edge handlers see the pre-edge samples, then the read and
// write processes run on what the handlers queued.
task ram_edge;
    begin
        // AR, AW and W sinks: take a beat on valid and ready, then ready unless full.
        if (m_axi_arready && s_arvalid) begin
            ar_id[ar_n] = s_ar_id; ar_addr[ar_n] = s_ar_addr; ar_len[ar_n] = s_ar_len;
            ar_size[ar_n] = s_ar_size; ar_burst[ar_n] = s_ar_burst;
            ar_n = ar_n + 1;
        end
        m_axi_arready = ar_n < QUEUE_LIMIT;
        if (m_axi_awready && s_awvalid) begin
            aw_id[aw_n] = s_aw_id; aw_addr[aw_n] = s_aw_addr; aw_len[aw_n] = s_aw_len;
            aw_size[aw_n] = s_aw_size; aw_burst[aw_n] = s_aw_burst;
            aw_n = aw_n + 1;
        end
        m_axi_awready = aw_n < QUEUE_LIMIT;
        if (m_axi_wready && s_wvalid) begin
            w_data[w_n] = s_w_data; w_strb[w_n] = s_w_strb;
            w_n = w_n + 1;
        end
        m_axi_wready = w_n < QUEUE_LIMIT;
        // R and B sources: a new beat once the one shown is taken (or none is shown).
        if ((m_axi_rvalid && s_rready) || !m_axi_rvalid) begin
            if (r_n != 0) begin
                m_axi_rid = r_id[0]; m_axi_rdata = r_data[0]; m_axi_rlast = r_last[0];
                r_id[0] = r_id[1]; r_data[0] = r_data[1]; r_last[0] = r_last[1];
                r_n = r_n - 1;
                m_axi_rvalid = 1;
            end else m_axi_rvalid = 0;
        end
        if ((m_axi_bvalid && s_bready) || !m_axi_bvalid) begin
            if (b_n != 0) begin
                m_axi_bid = b_id[0];
                b_id[0] = b_id[1];
                b_n = b_n - 1;
                m_axi_bvalid = 1;
            end else m_axi_bvalid = 0;
        end
        read_process;
        write_process;
    end
endtask

task ram_reset;
    begin
        ar_n = 0; aw_n = 0; w_n = 0; r_n = 0; b_n = 0;
        m_axi_arready = 0; m_axi_awready = 0; m_axi_wready = 0;
        m_axi_rvalid = 0; m_axi_bvalid = 0;
        reading = 0; writing = 0;
    end
endtask

// ---- Clock cycles ------------------------------------------------------------------------

// Let the top settle after its inputs changed (Verilator's eval() without a clock edge).
task settle;
    #1;
endtask

// The rising edge, the memory's response on the samples, and the falling edge (which the
// next settle lets through).
task tick;
    begin
        clk = 1;
        #1;
        ram_edge;
        clk = 0;
    end
endtask

// One clock cycle from a settled state.
task cycle;
    begin
        sample;
        tick;
    end
endtask

task reset;
    integer i;
    begin
        rst = 1;
        ram_reset;
        clk = 0;
        settle;
        for (i = 0; i < 4; i = i + 1) begin
            cycle;
            settle;
        end
        // harness.cpp samples the next edge's outputs before the top sees rst low, and the
        // edge after the top settled with it (Verilator's eval() settles inputs first).
        rst = 0;
        sample;
        settle;
        tick;
        settle;
        cycle;
        settle;
    end
endtask

// ---- The host: AXI4-Lite accesses, as harness.cpp's Harness --------------------------------

string failure;         // set when the job cannot go on: the message for the error line

task write_reg(input [REG_WIDTH-1:0] offset, input [31:0] value, output [1:0] resp);
    reg aw_done, w_done, aw, w, b, done;
    reg [1:0] bresp;
    integer n;
    begin
        s_axil_awaddr = offset;
        s_axil_awprot = 0;
        s_axil_wdata = value;
        s_axil_wstrb = 4'hF;
        s_axil_awvalid = 1;
        s_axil_wvalid = 1;
        s_axil_bready = 1;
        aw_done = 0;
        w_done = 0;
        done = 0;
        resp = 0;
        for (n = 0; !done && failure.len() == 0; n = n + 1) begin
            if (n > BOUND) failure = "register write never answered";
            else begin
                settle;
                aw = s_axil_awvalid && s_axil_awready;
                w = s_axil_wvalid && s_axil_wready;
                b = s_axil_bvalid;
                bresp = s_axil_bresp;
                cycle;
                if (aw) begin aw_done = 1; s_axil_awvalid = 0; end
                if (w) begin w_done = 1; s_axil_wvalid = 0; end
                if (aw_done && w_done && b) begin
                    s_axil_bready = 0;
                    settle;
                    resp = bresp;
                    done = 1;
                end
            end
        end
    end
endtask

task read_reg(input [REG_WIDTH-1:0] offset, output [31:0] value);
    reg ar, r, done;
    reg [31:0] data;
    integer n;
    begin
        s_axil_araddr = offset;
        s_axil_arprot = 0;
        s_axil_arvalid = 1;
        s_axil_rready = 1;
        done = 0;
        value = 0;
        for (n = 0; !done && failure.len() == 0; n = n + 1) begin
            if (n > BOUND) failure = "register read never answered";
            else begin
                settle;
                ar = s_axil_arvalid && s_axil_arready;
                r = s_axil_rvalid && s_axil_rready;
                data = s_axil_rdata;
                cycle;
                if (ar) s_axil_arvalid = 0;
                if (r) begin
                    s_axil_rready = 0;
                    settle;
                    value = data;
                    done = 1;
                end
            end
        end
    end
endtask

task write32(input [REG_WIDTH-1:0] offset, input [31:0] value);
    reg [1:0] resp;
    begin
        if (failure.len() == 0) begin
            write_reg(offset, value, resp);
            if (failure.len() == 0 && resp != 0)
                failure = $sformatf("register write at 0x%0h answered %0d", offset, resp);
        end
    end
endtask

task write64(input [REG_WIDTH-1:0] lo, input [63:0] value);
    begin
        write32(lo, value[31:0]);
        write32(lo + 4, value[63:32]);
    end
endtask

task read32(input [REG_WIDTH-1:0] offset, output [63:0] value);
    reg [31:0] word;
    begin
        value = 0;
        if (failure.len() == 0) begin
            read_reg(offset, word);
            value = word;
        end
    end
endtask

task read64(input [REG_WIDTH-1:0] lo, output [63:0] value);
    reg [63:0] low, high;
    begin
        read32(lo, low);
        read32(lo + 4, high);
        value = low | high << 32;
    end
endtask

// Wait for irq at most max_cycles cycles; done is 0 on a time-out.
task wait_irq(input [63:0] max_cycles, output done);
    reg [63:0] n;
    begin
        done = 0;
        settle;
        for (n = 0; n < max_cycles && !done; n = n + 1) begin
            if (irq) done = 1;
            else begin
                cycle;
                settle;
            end
        end
        if (!done) done = irq;
    end
endtask

// ---- The job -----------------------------------------------------------------------------

string folder;
integer script, result;

// The next value of the run script (hexadecimal, one a line).
task next_value(output [63:0] value);
    integer got;
    begin
        value = 0;
        if (failure.len() == 0) begin
            got = $fscanf(script, "%h\n", value);
            if (got != 1) failure = "job script is truncated";
        end
    end
endtask

reg [63:0] mem_base, image_words, runs, run, c;
reg [63:0] cmd_base, cmd_count, dma_base, dma_last, max_cycles, dump, dual_seed,
           reuse_strength, has_writes;
reg [63:0] cycles_before, cycles_after, status, code, index, value;
reg [`CHR_N_COUNTERS * REG_WIDTH - 1:0] counter_lo;
reg done;

initial begin : main
    failure = "";
    // Every input of the top is driven from time 0 (harness.cpp: Verilator's zeroed ports).
    clk = 0; rst = 1;
    s_axil_awaddr = 0; s_axil_araddr = 0; s_axil_awprot = 0; s_axil_arprot = 0;
    s_axil_wdata = 0; s_axil_wstrb = 0; s_axil_awvalid = 0; s_axil_wvalid = 0;
    s_axil_bready = 0; s_axil_arvalid = 0; s_axil_rready = 0;
    m_axi_rid = 0; m_axi_rdata = 0; m_axi_rlast = 0; m_axi_rresp = 0;
    m_axi_bid = 0; m_axi_bresp = 0;
    counter_lo = `CHR_COUNTER_LO;
    if (!$value$plusargs("job=%s", folder)) begin
        $display("error: no +job=FOLDER");
        disable main;
    end
    script = $fopen({folder, "/script.hex"}, "r");
    result = $fopen({folder, "/result.txt"}, "w");
    if (script == 0 || result == 0) begin
        $display("error: cannot open the job files in %0s", folder);
        disable main;
    end
    next_value(mem_bytes);
    next_value(mem_base);
    next_value(image_words);
    next_value(runs);
    if (failure.len() == 0 && mem_bytes > 4 * MEM_WORDS)
        failure = $sformatf("a memory of %0d bytes does not fit the build's %0d words",
                            mem_bytes, MEM_WORDS);
    if (failure.len() == 0) begin
        reset;
        if (image_words != 0) $readmemh({folder, "/image.hex"}, mem);
    end
    for (run = 0; run < runs && failure.len() == 0; run = run + 1) begin
        next_value(cmd_base); next_value(cmd_count); next_value(dma_base);
        next_value(dma_last); next_value(max_cycles); next_value(dump);
        next_value(dual_seed); next_value(reuse_strength); next_value(has_writes);
        if (failure.len() == 0 && has_writes != 0)
            $readmemh($sformatf("%0s/writes_%0d.hex", folder, run), mem);
        write64(`CHR_REG_DMA_BASE_LO, dma_base);
        write64(`CHR_REG_DMA_LAST_LO, dma_last);
        write32(`CHR_REG_DUAL_SEED, dual_seed[31:0]);
        write32(`CHR_REG_REUSE_STRENGTH, reuse_strength[31:0]);
        write64(`CHR_REG_CMD_BASE_LO, cmd_base);
        write32(`CHR_REG_CMD_COUNT, cmd_count[31:0]);
        write32(`CHR_REG_IRQ_ENABLE, `CHR_IRQ_BOTH);
        write32(`CHR_REG_IRQ_STATUS, `CHR_IRQ_BOTH);
        read64(`CHR_REG_CYCLES_LO, cycles_before);
        write32(`CHR_REG_DOORBELL, 1);
        if (failure.len() == 0) begin
            // The caller times the run from these two lines.
            $display("doorbell %0d", run);
            $fflush;
            wait_irq(max_cycles, done);
            $display("irq %0d", run);
            $fflush;
            read32(`CHR_REG_STATUS, status);
            if (failure.len() == 0 && !done)
                failure = $sformatf({"run %0d: no interrupt within %0d cycles of the ",
                                     "doorbell (STATUS 0x%0h)"}, run, max_cycles, status);
        end
        read32(`CHR_REG_ERROR_CODE, code);
        read32(`CHR_REG_ERROR_INDEX, index);
        write32(`CHR_REG_IRQ_STATUS, `CHR_IRQ_BOTH);
        read64(`CHR_REG_CYCLES_LO, cycles_after);
        if (failure.len() == 0)
            $fwrite(result, "run %0d %0h %0h %0h %0h\ncounters", run, status, code, index,
                    cycles_after - cycles_before);
        for (c = 0; c < `CHR_N_COUNTERS && failure.len() == 0; c = c + 1) begin
            read64(counter_lo[c * REG_WIDTH +: REG_WIDTH], value);
            $fwrite(result, " %0h", value);
        end
        if (failure.len() == 0) begin
            $fwrite(result, "\n");
            if (dump != 0 && image_words != 0)
                $writememh($sformatf("%0s/dump_%0d.hex", folder, run), mem,
                           word_index(mem_base), word_index(mem_base) + image_words - 1);
        end
    end
    if (failure.len() == 0) $fwrite(result, "end\n");
    else $display("error: %0s", failure);
    $fclose(script);
    $fclose(result);
end

endmodule
