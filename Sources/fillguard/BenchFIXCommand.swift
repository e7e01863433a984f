import ArgumentParser
import FillGuard
import FillGuardCore
import FillGuardFIX
import FillGuardSimulator
import Foundation

/// `fillguard bench-fix`: throughput over FIX 4.4 to the local QuickFIX test exchange.
struct BenchFIXCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-fix",
        abstract: "Fills/s and reaction latency over FIX 4.4 against the QuickFIX test exchange (tools/fix-peer).",
        discussion: """
            Opens --positions brackets with market entries at once; the exchange fills each entry in \
            --fills-per-position executions, and FillGuard resizes every stop and target over FIX (native modify). \
            Reports fills/s (first open to the last fill applied with every operation answered) and two latencies: \
            FillGuard's reaction (fill received to protective operation handed to the broker) and protection over \
            the wire (fill received to the next protective order acknowledged by the exchange). The run is checked \
            against the exchange's OrderMassStatus; exits 1 on any difference. Without --fix-port it starts the test \
            exchange itself (--peer, built by scripts/fix-peer build).
            """)

    @Option(help: "Brackets opened per run, one per symbol.")
    var positions = 2_000

    @Option(help: "Executions each market entry is filled in (the started exchange's --market-fills).")
    var fillsPerPosition = 10

    @Option(help: "Shares per entry.")
    var quantity = 1_000

    @Option(help: "Runs; medians are reported.")
    var runs = 3

    @Option(help: "After each burst, brackets opened at --paced-rate for the latencies of an unsaturated system (0: no paced phase).")
    var pacedPositions = 300

    @Option(help: "Brackets per second in the paced phase (each brings --fills-per-position fills); 0 skips it.")
    var pacedRate = 100

    @Option(help: "Use a running exchange on this port instead of starting one (it needs --auto-market, and --market-fills for several fills per entry).")
    var fixPort: Int?

    @Option(help: "Its host.")
    var fixHost = "127.0.0.1"

    @Option(help: "The test exchange binary to start (default: $FILLGUARD_FIX_PEER or .build/fix-peer/fix-peer).")
    var peer: String?

    @Option(help: "Its FIX44.xml (default: $FILLGUARD_FIX44_XML or FIX44.xml next to the binary).")
    var spec: String?

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard positions >= 1, positions <= 10_000 else { throw ValidationError("--positions must be between 1 and 10000") }
        guard fillsPerPosition >= 1, fillsPerPosition <= quantity else { throw ValidationError("--fills-per-position must be between 1 and --quantity") }
        guard quantity >= 1, quantity <= 1_000_000 else { throw ValidationError("--quantity must be between 1 and 1000000") }
        guard runs >= 1, runs <= 100 else { throw ValidationError("--runs must be between 1 and 100") }
        guard pacedPositions >= 1, pacedPositions <= 10_000 else { throw ValidationError("--paced-positions must be between 1 and 10000") }
        guard pacedRate >= 0, pacedRate <= 100_000 else { throw ValidationError("--paced-rate must be between 0 and 100000") }
    }

    private static func median(_ values: [Int]) -> Int { values.isEmpty ? 0 : values.sorted()[values.count / 2] }

    private static func millis(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    /// Medians of p50, p99 and max over runs.
    private static func latency(_ summaries: [LatencySummary]) -> (p50: Int, p99: Int, max: Int, count: Int) {
        (median(summaries.map(\.p50)), median(summaries.map(\.p99)), median(summaries.map(\.max)), median(summaries.map(\.count)))
    }

    private func jsonReport(endpoint: String, bursts: [FIXBenchResult], paced: [FIXBenchResult], violations: [String]) -> String {
        func latencyJSON(_ value: (p50: Int, p99: Int, max: Int, count: Int)) -> String {
            "{\"samples\":\(value.count),\"p50\":\(value.p50),\"p99\":\(value.p99),\"max\":\(value.max)}"
        }
        func summaryJSON(_ summary: LatencySummary) -> String {
            latencyJSON((summary.p50, summary.p99, summary.max, summary.count))
        }
        func runJSON(_ result: FIXBenchResult) -> String {
            let operations = OrderOperation.Kind.allCases.map { kind -> String in
                let count = result.operations[kind] ?? 0
                return "\"\(kind.rawValue)\":\(count)"
            }
            let parts: [String] = [
                "\"fills\":\(result.fills)",
                "\"millis\":\(Self.millis(result.elapsed))",
                "\"fillsPerSecond\":\(result.fillsPerSecond)",
                "\"reactionMicros\":" + summaryJSON(result.reaction),
                "\"protectionMicros\":" + summaryJSON(result.protection),
                "\"operations\":{" + operations.joined(separator: ",") + "}",
                "\"retries\":\(result.retries)",
            ]
            return "{" + parts.joined(separator: ",") + "}"
        }
        func phase(_ results: [FIXBenchResult], rate: Int?) -> String {
            let rateText = rate.map { String($0) } ?? "null"
            let parts: [String] = [
                "\"positions\":\(results.first?.positions ?? 0)",
                "\"positionsPerSecond\":" + rateText,
                "\"fillsPerSecondMedian\":\(Self.median(results.map(\.fillsPerSecond)))",
                "\"reactionMicrosMedian\":" + latencyJSON(Self.latency(results.map(\.reaction))),
                "\"protectionMicrosMedian\":" + latencyJSON(Self.latency(results.map(\.protection))),
                "\"runs\":[" + results.map(runJSON).joined(separator: ",") + "]",
            ]
            return "{" + parts.joined(separator: ",") + "}"
        }
        let parts: [String] = [
            "\"endpoint\":" + JSONText.quote(endpoint),
            "\"fillsPerPosition\":\(fillsPerPosition)",
            "\"quantity\":\(quantity)",
            "\"burst\":" + phase(bursts, rate: nil),
            "\"paced\":" + (paced.isEmpty ? "null" : phase(paced, rate: pacedRate)),
            "\"violations\":[" + violations.map(JSONText.quote).joined(separator: ",") + "]",
        ]
        return "{" + parts.joined(separator: ",") + "}"
    }

    private func textReport(endpoint: String, bursts: [FIXBenchResult], paced: [FIXBenchResult], violations: [String]) -> String {
        var lines: [String] = []
        lines.append("FIX bench over FIX 4.4 to \(endpoint): entries of \(quantity) shares filled in \(fillsPerPosition) executions, \(bursts.count) run\(bursts.count == 1 ? "" : "s") (medians)")
        func latencyLines(_ results: [FIXBenchResult]) {
            let reaction = Self.latency(results.map(\.reaction))
            let protection = Self.latency(results.map(\.protection))
            lines.append("    reaction (µs)       p50 \(reaction.p50), p99 \(reaction.p99), max \(reaction.max)   (fill received -> protective operation handed to the broker)")
            lines.append("    protection (µs)     p50 \(protection.p50), p99 \(protection.p99), max \(protection.max)   (fill received -> next protective order acknowledged over FIX)")
        }
        let first = bursts[0]
        lines.append("  burst: \(first.positions) brackets opened at once")
        lines.append("    fills/s             \(Self.median(bursts.map(\.fillsPerSecond)))  (runs: \(bursts.map { String($0.fillsPerSecond) }.joined(separator: ", ")))")
        lines.append("    fills per run       \(first.fills) in " + bursts.map { "\(Self.millis($0.elapsed)) ms" }.joined(separator: ", "))
        latencyLines(bursts)
        lines.append("    broker operations   " + OrderOperation.Kind.allCases.map { "\($0.rawValue) \(first.operations[$0] ?? 0)" }.joined(separator: ", ") + " (first run), retries \(first.retries)")
        if !paced.isEmpty {
            lines.append("  paced: \(paced[0].positions) brackets at \(pacedRate)/s (\(pacedRate * fillsPerPosition) fills/s offered)")
            lines.append("    fills/s             \(Self.median(paced.map(\.fillsPerSecond)))")
            latencyLines(paced)
        }
        lines.append("  violations            \(violations.count)")
        for violation in violations.prefix(20) { lines.append("    - \(violation)") }
        return lines.joined(separator: "\n")
    }

    func run() async throws {
        var started: TestExchangeProcess?
        let port: Int
        if let fixPort {
            port = fixPort
        } else {
            let environment = ProcessInfo.processInfo.environment
            let binary = peer ?? environment["FILLGUARD_FIX_PEER"] ?? ".build/fix-peer/fix-peer"
            let dictionary = spec ?? environment["FILLGUARD_FIX44_XML"]
                ?? URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("FIX44.xml").path
            do {
                let exchange = try TestExchangeProcess.launch(binary: binary, spec: dictionary, arguments: [
                    "--auto-market", "1", "--market-fills", String(fillsPerPosition), "--quiet", "--no-log",
                ])
                started = exchange
                port = exchange.port
            } catch {
                writeToStandardError("fillguard: \(error)\n")
                throw ExitCode(2)
            }
        }
        defer { started?.stop() }

        var bursts: [FIXBenchResult] = []
        var paced: [FIXBenchResult] = []
        for _ in 0..<runs {
            var settings = FIXSettings()
            settings.host = fixHost
            settings.port = port
            var options = FIXBenchOptions(settings: settings)
            options.positions = positions
            options.quantity = Quantity(quantity)
            do {
                bursts.append(try await FIXBench.run(options))
                if pacedRate > 0 {
                    options.positions = pacedPositions
                    options.positionsPerSecond = pacedRate
                    options.runID = FIXSimulationOptions.makeRunID()
                    paced.append(try await FIXBench.run(options))
                }
            } catch {
                writeToStandardError("fillguard: \(error)\n")
                throw ExitCode(2)
            }
        }
        let violations = (bursts + paced).flatMap(\.violations)
        let endpoint = "\(fixHost):\(port)"
        if json {
            print(jsonReport(endpoint: endpoint, bursts: bursts, paced: paced, violations: violations))
        } else {
            print(textReport(endpoint: endpoint, bursts: bursts, paced: paced, violations: violations))
        }
        if !violations.isEmpty { throw ExitCode(1) }
    }
}

/// The QuickFIX test exchange as a child process: started on a free port, its output drained,
/// stopped with "quit".
final class TestExchangeProcess: Sendable {
    private let process: Process
    private let input: FileHandle
    /// The FIX port it listens on.
    let port: Int

    private init(process: Process, input: FileHandle, port: Int) {
        self.process = process
        self.input = input
        self.port = port
    }

    /// Starts `binary` and waits (up to 30 s) for its READY line.
    static func launch(binary: String, spec: String, arguments: [String]) throws -> TestExchangeProcess {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ValidationError("the FIX test exchange is not built (\(binary) missing): run scripts/fix-peer build, or give --peer / --fix-port")
        }
        guard FileManager.default.fileExists(atPath: spec) else { throw ValidationError("FIX44.xml missing at \(spec): run scripts/fix-peer build, or give --spec") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("fix-peer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--spec", spec, "--dir", work.path] + arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        let ready = DispatchSemaphore(value: 0)
        let readyLine = LockedLine()
        let reader = Thread {
            let handle = stdout.fileHandleForReading
            var pending = Data()
            var announced = false
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                guard !announced else { continue } // drained and dropped after READY
                pending.append(chunk)
                if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    readyLine.set(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    announced = true
                    ready.signal()
                }
            }
            if !announced { ready.signal() }
        }
        reader.start()
        guard ready.wait(timeout: .now() + 30) == .success, let line = readyLine.get(), line.hasPrefix("READY "),
              let port = Int(line.dropFirst("READY ".count)) else {
            process.terminate()
            throw ValidationError("the FIX test exchange did not start (\(readyLine.get() ?? "no output"))")
        }
        return TestExchangeProcess(process: process, input: stdin.fileHandleForWriting, port: port)
    }

    /// Asks it to quit and waits for it.
    func stop() {
        try? input.write(contentsOf: Data("quit\n".utf8))
        try? input.close()
        process.waitUntilExit()
    }
}

/// One line shared between threads.
private final class LockedLine: @unchecked Sendable {
    private let lock = NSLock()
    private var line: String?

    func set(_ value: String) { lock.withLock { line = value } }
    func get() -> String? { lock.withLock { line } }
}
