"""cocotb testbenches: modules imported inside the simulator by :func:`sim.verify.runner.run_testbench`."""
