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
        let fills = try #require(report["fillsApplied"] as? Int, "no fillsApplied in \(session.output.prefix(300))")
        #expect(fills > 0, "the session traded")
        #expect(sample("fillguard_fills", in: text) == Double(fills), "\(text)")
        // No temporary file is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(".") }.isEmpty)

        let unwritable = try await run(["simulate", "--duration", "0.1", "--metrics-file", directory + "/missing/fillguard.prom"])
        #expect(unwritable.status == 2 && unwritable.errors.contains("--metrics-file: cannot write"), "\(unwritable.errors)")
        let journal = directory + "/j.sqlite"
        let clash = try await run(["simulate", "--duration", "0.1", "--journal", journal, "--metrics-file", journal + "-wal"])
        #expect(clash.status == 2 && clash.errors.contains("would overwrite the journal's files"), "\(clash.errors)")
        #expect(!FileManager.default.fileExists(atPath: journal), "refused before the journal was made")
    }

    @Test("simulate --metrics-file never replaces a journal under another spelling, a file that is not a metrics file, a FIFO or a directory; it follows a symbolic link")
    func metricsFileSparesOtherFiles() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binary = root.appendingPathComponent(".build/debug/fillguard").path
        let directory = NSTemporaryDirectory() + "fillguard-metrics-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/textfile", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func run(_ arguments: [String]) async throws -> (status: Int32, errors: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
            let errorsPath = directory + "/stderr-\(UUID().uuidString)"
            _ = FileManager.default.createFile(atPath: errorsPath, contents: nil)
            let (exit, _) = try ChildExit.spawn(process) {
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle(forWritingAtPath: errorsPath)
            }
            await exit.value()
            defer { unlink(errorsPath) }
            return (process.terminationStatus, String(decoding: FileManager.default.contents(atPath: errorsPath) ?? Data(), as: UTF8.self))
        }
        let first = try await run(["simulate", "--symbols", "2", "--duration", "0.3", "--journal", "j.sqlite"])
        try #require(first.status == 0, "\(first.errors)")
        let journal = try #require(FileManager.default.contents(atPath: directory + "/j.sqlite"))
        let exchange = try #require(FileManager.default.contents(atPath: directory + "/j.sqlite.exchange"))
        try FileManager.default.linkItem(atPath: directory + "/j.sqlite", toPath: directory + "/hard.db")
        // The journal and its exchange state under other spellings (they were replaced, the journal lost).
        for spelling in ["./j.sqlite", directory + "/textfile/../j.sqlite", "hard.db", "./j.sqlite.exchange"] {
            let refused = try await run(["simulate", "--symbols", "2", "--duration", "0.3", "--journal", "j.sqlite", "--metrics-file", spelling])
            #expect(refused.status == 2 && refused.errors.contains("is the journal's file"), "\(spelling): \(refused.errors)")
        }
        #expect(FileManager.default.contents(atPath: directory + "/j.sqlite") == journal)
        #expect(FileManager.default.contents(atPath: directory + "/j.sqlite.exchange") == exchange)
        // A file of a person's, a FIFO and a directory are not replaced. (No device here: as
        // root, a regression would replace /dev/null itself, as the old code did.)
        try "keep me\n".write(toFile: directory + "/notes.txt", atomically: true, encoding: .utf8)
        #expect(mkfifo(directory + "/fifo.prom", 0o644) == 0)
        for (path, reason) in [("notes.txt", "is not a metrics file"), ("fifo.prom", "is not a regular file"), ("textfile", "is not a regular file")] {
            let refused = try await run(["simulate", "--duration", "0.1", "--metrics-file", path])
            #expect(refused.status == 2 && refused.errors.contains(reason), "\(path): \(refused.errors)")
        }
        #expect(try String(contentsOfFile: directory + "/notes.txt", encoding: .utf8) == "keep me\n")
        // Nor a file in the FIX session store (its lock is an empty file): refused before any connection.
        try FileManager.default.createDirectory(atPath: directory + "/store", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: directory + "/store/lock", contents: nil)
        let store = try await run(["simulate", "--broker", "fix", "--fix-port", "9", "--fix-store", "store", "--metrics-file", "./store/../store/lock"])
        #expect(store.status == 2 && store.errors.contains("inside the FIX session store"), "\(store.errors)")
        // A symbolic link into a textfile directory, its file not there yet: written through it.
        try FileManager.default.createSymbolicLink(atPath: directory + "/link.prom", withDestinationPath: "textfile/fillguard.prom")
        let linked = try await run(["simulate", "--duration", "0.3", "--metrics-file", "link.prom"])
        #expect(linked.status == 0, "\(linked.errors)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: directory + "/link.prom") == "textfile/fillguard.prom")
        #expect(try String(contentsOfFile: directory + "/textfile/fillguard.prom", encoding: .utf8).hasPrefix("# "))
        // A journal named like the old temporary file (PATH.tmp) is not touched by the writes.
        let beside = try await run(["simulate", "--duration", "0.3", "--journal", "run.tmp", "--metrics-file", "run"])
        #expect(beside.status == 0, "\(beside.errors)")
        let header = try #require(FileManager.default.contents(atPath: directory + "/run.tmp")).prefix(15)
        #expect(String(decoding: header, as: UTF8.self) == "SQLite format 3")
    }
}
