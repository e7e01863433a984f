/// The simulated exchange: a `Broker` with price paths, latency and fault injection.
enum FillGuardSimulatorNamespace {}
