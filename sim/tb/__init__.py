"""cocotb testbenches: modules imported inside the simulator by :func:`sim.runner.run_testbench`."""
