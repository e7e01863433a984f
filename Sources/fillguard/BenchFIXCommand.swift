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

        var results: [FIXBenchResult] = []
        for _ in 0..<runs {
            var settings = FIXSettings()
            settings.host = fixHost
            settings.port = port
            var options = FIXBenchOptions(settings: settings)
            options.positions = positions
            options.quantity = Quantity(quantity)
            do {
                results.append(try await FIXBench.run(options))
            } catch {
                writeToStandardError("fillguard: \(error)\n")
                throw ExitCode(2)
            }
        }
        func median(_ values: [Int]) -> Int { values.sorted()[values.count / 2] }
        let fillsPerSecond = median(results.map(\.fillsPerSecond))
        let reaction = (median(results.map(\.reaction.p50)), median(results.map(\.reaction.p99)), median(results.map(\.reaction.max)))
        let protection = (median(results.map(\.protection.p50)), median(results.map(\.protection.p99)), median(results.map(\.protection.max)))
        let violations = results.flatMap(\.violations)
        let endpoint = "\(fixHost):\(port)"
        if json {
            func latency(_ summary: LatencySummary) -> String {
                "{\"count\":\(summary.count),\"p50\":\(summary.p50),\"p99\":\(summary.p99),\"max\":\(summary.max)}"
            }
            let runsJSON = results.map { result in
                "{\"fills\":\(result.fills),\"millis\":\(result.elapsed.components.seconds * 1_000 + result.elapsed.components.attoseconds / 1_000_000_000_000_000),"
                    + "\"fillsPerSecond\":\(result.fillsPerSecond),\"reactionMicros\":\(latency(result.reaction)),"
                    + "\"protectionMicros\":\(latency(result.protection)),\"operations\":{"
                    + OrderOperation.Kind.allCases.map { "\"\($0.rawValue)\":\(result.operations[$0] ?? 0)" }.joined(separator: ",")
                    + "},\"retries\":\(result.retries)}"
            }
            print("{\"endpoint\":\(JSONText.quote(endpoint)),\"positions\":\(positions),\"fillsPerPosition\":\(fillsPerPosition),"
                + "\"quantity\":\(quantity),\"runs\":[\(runsJSON.joined(separator: ","))],"
                + "\"median\":{\"fillsPerSecond\":\(fillsPerSecond),\"reactionMicros\":{\"p50\":\(reaction.0),\"p99\":\(reaction.1),\"max\":\(reaction.2)},"
                + "\"protectionMicros\":{\"p50\":\(protection.0),\"p99\":\(protection.1),\"max\":\(protection.2)}},"
                + "\"violations\":[\(violations.map(JSONText.quote).joined(separator: ","))]}")
        } else {
            let first = results[0]
            print("FIX bench: \(positions) positions x \(fillsPerPosition) fills of \(quantity) shares over FIX 4.4 to \(endpoint), \(results.count) run\(results.count == 1 ? "" : "s") (medians)")
            print("  fills/s               \(fillsPerSecond)  (runs: \(results.map { String($0.fillsPerSecond) }.joined(separator: ", ")))")
            print("  fills per run         \(first.fills) in " + results.map { "\($0.elapsed.components.seconds * 1_000 + $0.elapsed.components.attoseconds / 1_000_000_000_000_000) ms" }.joined(separator: ", "))
            print("  reaction (µs)         p50 \(reaction.0), p99 \(reaction.1), max \(reaction.2)   (fill received -> protective operation handed to the broker)")
            print("  protection (µs)       p50 \(protection.0), p99 \(protection.1), max \(protection.2)   (fill received -> next protective order acknowledged over FIX)")
            print("  broker operations     " + OrderOperation.Kind.allCases.map { "\($0.rawValue) \(first.operations[$0] ?? 0)" }.joined(separator: ", ") + " (first run), retries \(first.retries)")
            print("  violations            \(violations.count)")
            for violation in violations.prefix(20) { print("    - \(violation)") }
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
