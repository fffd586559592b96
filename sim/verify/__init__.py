"""RTL runners and testbenches: the accelerator's Verilog under Icarus or Verilator, checked
against the golden machine."""
