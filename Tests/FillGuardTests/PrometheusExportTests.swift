import FillGuard
import FillGuardCore
import FillGuardSimulator
import Foundation
import Prometheus
import Testing

@Suite("Metrics exported to Prometheus", .timeLimit(.minutes(5)))
struct PrometheusExportTests {
    /// The value of an unlabelled or labelled sample line, `name{labels} value`, in an exposition.
    private func sample(_ name: String, in text: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test("a session's manager records into a swift-prometheus registry: its counts match the session's report")
    func sessionMetricsInPrometheusText() async throws {
        let registry = PrometheusCollectorRegistry()
        var options = SimulationOptions()
        options.symbols = 4
        options.duration = .milliseconds(800)
        options.faultRate = 0.1
        options.metricsFactory = PrometheusMetricsFactory(registry: registry)
        let report = try await SimulationSession(options: options).run()
        let text = registry.emitToString()
        #expect(report.fills > 0)
        #expect(sample("fillguard_fills", in: text) == Double(report.fillsApplied), "\(text)")
        for kind in OrderOperation.Kind.allCases {
            #expect(sample("fillguard_broker_operations{operation=\"\(kind.rawValue)\"}", in: text) == Double(report.operations[kind] ?? 0))
        }
        #expect(sample("fillguard_retries", in: text) == Double(report.retries))
        #expect(sample("fillguard_alerts", in: text) == Double(report.alerts))
        #expect(text.contains("# TYPE fillguard_reaction histogram") && text.contains("# TYPE fillguard_breaker_state gauge"), "\(text)")
        #expect((sample("fillguard_processing_count", in: text) ?? 0) >= Double(report.fillsApplied))
    }

    @Test("simulate --metrics-file writes the exposition, refuses a path it cannot write or one of the journal's files")
    func metricsFileOption() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binary = root.appendingPathComponent(".build/debug/fillguard").path
        let directory = NSTemporaryDirectory() + "fillguard-metrics-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Output to files, and the end awaited (no pipe to fill up, no thread of the pool blocked).
        func run(_ arguments: [String]) async throws -> (status: Int32, output: String, errors: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            let outputPath = directory + "/stdout-\(UUID().uuidString)", errorsPath = directory + "/stderr-\(UUID().uuidString)"
            for path in [outputPath, errorsPath] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            let (exit, _) = try ChildExit.spawn(process) {
                process.standardOutput = FileHandle(forWritingAtPath: outputPath)
                process.standardError = FileHandle(forWritingAtPath: errorsPath)
            }
            await exit.value()
            try #require(exit.hasExited, "fillguard \(arguments.joined(separator: " ")) did not end")
            let text = { (path: String) in String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self) }
            return (process.terminationStatus, text(outputPath), text(errorsPath))
        }
        let path = directory + "/fillguard.prom"
        let session = try await run(["simulate", "--symbols", "3", "--duration", "0.5", "--metrics-file", path, "--json"])
        #expect(session.status == 0, "\(session.errors)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(session.output.utf8)) as? [String: Any])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(sample("fillguard_fills", in: text) == (report["fillsApplied"] as? Double ?? (report["fillsApplied"] as? Int).map(Double.init)), "\(text)")
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))

        let unwritable = try await run(["simulate", "--duration", "0.1", "--metrics-file", directory + "/missing/fillguard.prom"])
        #expect(unwritable.status == 2 && unwritable.errors.contains("--metrics-file: cannot write"), "\(unwritable.errors)")
        let journal = directory + "/j.sqlite"
        let clash = try await run(["simulate", "--duration", "0.1", "--journal", journal, "--metrics-file", journal + "-wal"])
        #expect(clash.status == 2 && clash.errors.contains("would overwrite the journal's files"), "\(clash.errors)")
        #expect(!FileManager.default.fileExists(atPath: journal), "refused before the journal was made")
    }
}
