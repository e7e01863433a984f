import FillGuard
import FillGuardCore

/// Collects the first alerts a manager raises, for a session's report.
struct AlertSamples: Sendable {
    private let collector: Task<[String], Never>

    /// Starts collecting the manager's alerts (subscribe before trading, so none is missed).
    init(_ manager: FillManager, limit: Int = SimulationReport.alertSampleLimit) {
        let stream = manager.alerts()
        collector = Task {
            var samples: [String] = []
            for await alert in stream where samples.count < limit { samples.append(alert.description) }
            return samples
        }
    }

    /// The alerts collected, once the manager's subscriptions are finished.
    func collected() async -> [String] { await collector.value }
}
