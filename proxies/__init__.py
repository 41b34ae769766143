"""Pure scoring: a trial's raw metrics in, a proxy score out (imports neither synthesis nor correlation)."""
