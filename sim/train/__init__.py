"""Training drivers: a network learns scikit-learn's digits on the golden model or the RTL."""
