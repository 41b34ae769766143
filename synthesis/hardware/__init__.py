"""Where networks run: the cores a process may use, devices, precision."""
