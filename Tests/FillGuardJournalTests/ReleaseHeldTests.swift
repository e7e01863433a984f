import FillGuard
import FillGuardCore
import FillGuardSimulator
import FillGuardSQLite
import Foundation
import Testing

/// `fillguard recover --release SYMBOL`: a `RecoverySession` against a saved exchange state that
/// lets a person send the work recovery held after a position mismatch, symbol by symbol.
@Suite("Recovery: releasing held symbols", .timeLimit(.minutes(5)))
struct ReleaseHeldTests {
    private static let market: SimulatorConfiguration = {
        var market = SimulatorConfiguration(seed: 1)
        market.volatilityBasisPoints = 0
        market.partialFillAbove = nil
        return market
    }()

    private static func bracket(_ position: PositionID, _ symbol: Symbol, price: Int) -> BracketSpec {
        BracketSpec(positionID: position, symbol: symbol, side: .buy, quantity: 300, entryType: .market,
                    stopLoss: Price(integerLiteral: Int64(price - 10)), takeProfit: Price(integerLiteral: Int64(price + 10)))
    }

    private static func isStop(_ order: SimulatedOrder) -> Bool {
        if case .stop = order.type { return true } else { return false }
    }

    /// Long 300 of GLD and of SLV, each with its stop and target, journaled; the process dies;
    /// while it is down someone flattens both at the exchange and cancels their orders. Returns
    /// the journal that survived and the exchange state's path.
    private static func bothFlattenedWhileDown() async throws -> (InMemoryJournalStore, String) {
        let statePath = try temporaryDirectory() + "/run.exchange"
        let exchange = try SimulatedExchange(configuration: market, symbols: ["GLD": 248, "SLV": 30], statePath: statePath)
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket("P1", "GLD", price: 248))
        try await first.manager.open(bracket("P2", "SLV", price: 30))
        await first.settle()
        #expect(exchange.liveOrders(of: "GLD").count == 2 && exchange.liveOrders(of: "SLV").count == 2)
        let survivor = first.kill()
        for symbol: Symbol in ["GLD", "SLV"] {
            try await exchange.submit(NewOrderRequest(orderID: OrderID("MANUAL-\(symbol)"), symbol: symbol, side: .sell, type: .market,
                                                      quantity: 300, timeInForce: .immediateOrCancel))
            for order in exchange.liveOrders(of: symbol) { try await exchange.cancel(CancelOrderRequest(orderID: order.id, symbol: symbol)) }
            #expect(exchange.netPosition(of: symbol) == 0 && exchange.liveOrders(of: symbol).isEmpty)
        }
        return (survivor, statePath)
    }

    @Test("the named held symbol's work is sent, the other stays held, and a symbol that was not held is named back")
    func releasesOnlyTheNamedHeldSymbols() async throws {
        let (survivor, statePath) = try await Self.bothFlattenedWhileDown()
        var session = RecoverySession(journal: Journal(store: survivor), exchangeStatePath: statePath)
        session.release = ["GLD", "XYZ"]
        let outcome = try await session.run(logger: .quiet)
        #expect(outcome.recovery.heldSymbols == ["GLD", "SLV"])
        #expect(outcome.notHeld == ["XYZ"])
        #expect(outcome.alerts.contains { $0.contains("protectiveEndedByBroker P1 stopLoss") }, "the cancelled stop is told: \(outcome.alerts)")
        #expect(!outcome.alerts.contains { $0.contains("operationFailed") }, "\(outcome.alerts)")

        // The exchange as the session left it (its state file, read again).
        let after = try SimulatedExchange(configuration: Self.market, symbols: [:], statePath: statePath)
        #expect(after.liveOrders(of: "GLD").filter(Self.isStop).map(\.quantity) == [300], "released: placed as the journal's state says")
        #expect(after.liveOrders(of: "SLV").isEmpty, "still held: nothing sent onto the flat account")
        #expect(outcome.problems.contains { $0.contains("GLD") } && outcome.problems.contains { $0.contains("SLV") },
                "the mismatch stays a problem for a person either way: \(outcome.problems)")

        // Without --release, nothing is sent for either.
        let (otherSurvivor, otherPath) = try await Self.bothFlattenedWhileDown()
        let held = try await RecoverySession(journal: Journal(store: otherSurvivor), exchangeStatePath: otherPath).run(logger: .quiet)
        #expect(held.recovery.heldSymbols == ["GLD", "SLV"] && held.notHeld.isEmpty)
        let untouched = try SimulatedExchange(configuration: Self.market, symbols: [:], statePath: otherPath)
        #expect(untouched.liveOrders(of: "GLD").isEmpty && untouched.liveOrders(of: "SLV").isEmpty)
    }

    @Test("an operation that fails for good after a release is reported as an alert, not lost in the state")
    func releasedWorkThatFailsIsAlerted() async throws {
        let (survivor, statePath) = try await Self.bothFlattenedWhileDown()
        // A venue that no longer lists the symbols: its state keeps no order of them.
        let kept = try String(contentsOfFile: statePath, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("{\"order\"") && !$0.hasPrefix("{\"execution\"") }
        try (kept.joined(separator: "\n") + "\n").write(toFile: statePath, atomically: true, encoding: .utf8)
        var session = RecoverySession(journal: Journal(store: survivor), exchangeStatePath: statePath)
        session.release = ["GLD"]
        let outcome = try await session.run(logger: .quiet)
        #expect(outcome.notHeld.isEmpty)
        #expect(outcome.alerts.contains { $0.contains("operationFailed") && $0.contains("GLD") && $0.contains("unknown symbol") },
                "\(outcome.alerts)")
        #expect(!outcome.alerts.contains { $0.contains("operationFailed") && $0.contains("SLV") }, "SLV stays held: nothing was sent for it")
    }

    @Test("fillguard recover --release: the named held symbol's work goes out, the other is named as held, a symbol not held exits 1")
    func recoverCommandReleases() async throws {
        let journalPath = try temporaryDirectory() + "/run.journal"
        let statePath = journalPath + ".exchange"
        let exchange = try SimulatedExchange(configuration: Self.market, symbols: ["GLD": 248, "SLV": 30], statePath: statePath)
        let manager = FillManager(broker: exchange, journal: Journal(store: try SQLiteJournalStore(path: journalPath, durability: .fsync)),
                                  configuration: FillGuardConfiguration(rearmDelay: nil), logger: .quiet)
        _ = try await manager.recover()
        let feed = Task { await manager.run(exchange.events()) }
        try await manager.open(Self.bracket("P1", "GLD", price: 248))
        try await manager.open(Self.bracket("P2", "SLV", price: 30))
        await exchange.settle(manager)
        feed.cancel()
        #expect(await manager.shutdown())
        for symbol: Symbol in ["GLD", "SLV"] {
            try await exchange.submit(NewOrderRequest(orderID: OrderID("MANUAL-\(symbol)"), symbol: symbol, side: .sell, type: .market,
                                                      quantity: 300, timeInForce: .immediateOrCancel))
            for order in exchange.liveOrders(of: symbol) { try await exchange.cancel(CancelOrderRequest(orderID: order.id, symbol: symbol)) }
        }

        let refused = try await runFillguard(["recover", "--journal", journalPath, "--release", " "])
        #expect(refused.status == 2 && refused.standardError.contains("--release needs a symbol"), "\(refused)")

        let released = try await runFillguard(["recover", "--journal", journalPath, "--release", "GLD", "--release", "XYZ"])
        #expect(released.status == 1, "the mismatch stays, and XYZ was not held: \(released)")
        #expect(released.standardError.contains("released: GLD:") && released.standardError.contains("held: SLV:"), "\(released.standardError)")
        #expect(released.standardError.contains("--release XYZ: this recovery did not hold XYZ"), "\(released.standardError)")
        let after = try SimulatedExchange(configuration: Self.market, symbols: [:], statePath: statePath)
        #expect(after.liveOrders(of: "GLD").filter(Self.isStop).map(\.quantity) == [300], "sent as the journal's state says")
        #expect(after.liveOrders(of: "SLV").isEmpty, "held: nothing sent")

        // A session resumed on it: both are held again (a release is for one recovery: the nets
        // still differ from the broker's until a person has looked), which the final check
        // counts: the session exits 1, naming them.
        let resumed = try await runFillguard(["simulate", "--journal", journalPath, "--symbols", "2", "--duration", "0.3", "--json"])
        #expect(resumed.status == 1, "a held symbol fails the session: \(resumed.status) \(resumed.standardError.suffix(400))")
        let report = try JSONSerialization.jsonObject(with: Data(resumed.standardOutput.utf8)) as? [String: Any]
        let journal = report?["journal"] as? [String: Any]
        #expect(journal?["heldSymbols"] as? [String] == ["GLD", "SLV"], "\(resumed.standardOutput.prefix(600))")
        #expect((report?["invariantViolations"] as? Int ?? 0) > 0)
    }
}

extension ReleaseHeldTests {
    @Test("fillguard recover of a journal whose file is gone (or empty) but whose -wal is there says so, not 'no journal' (or 'empty')")
    func recoverNamesAnOrphanedWAL() async throws {
        let journal = try temporaryDirectory() + "/j.sqlite"
        _ = FileManager.default.createFile(atPath: journal + "-wal", contents: Data(repeating: 7, count: 4096))
        let run = try await runFillguard(["recover", "--journal", journal])
        #expect(run.status == 2 && run.standardError.contains("-wal holds a journal's latest writes, but its database file"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: journal), "nothing created")
        // An empty file beside it: the log is what is named, not "an empty file".
        _ = FileManager.default.createFile(atPath: journal, contents: Data())
        let emptied = try await runFillguard(["recover", "--journal", journal])
        #expect(emptied.status == 2 && emptied.standardError.contains("-wal holds committed writes"), "\(emptied)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: journal + "-wal")) == Data(repeating: 7, count: 4096), "the log is left as it was")
        // An empty file whose log holds no commit (a header alone) is an empty file: nothing is made of it.
        let headerOnly = try temporaryDirectory() + "/h.sqlite"
        _ = FileManager.default.createFile(atPath: headerOnly, contents: Data())
        _ = FileManager.default.createFile(atPath: headerOnly + "-wal", contents: Data(repeating: 0, count: 32))
        let empty = try await runFillguard(["recover", "--journal", headerOnly])
        #expect(empty.status == 2 && empty.standardError.contains("is empty, not a journal"), "\(empty)")
        #expect(try FileManager.default.attributesOfItem(atPath: headerOnly)[.size] as? Int == 0, "nothing was created in it")
        let missing = try await runFillguard(["recover", "--journal", journal + ".other"])
        #expect(missing.status == 2 && missing.standardError.contains("no journal at"), "\(missing)")
    }

    @Test("recover and simulate --unsent-entries take send or refuse, and nothing else (exit 2 before anything is read); simulate only with --journal")
    func recoverRefusesAnUnknownUnsentEntriesPolicy() async throws {
        let journal = try temporaryDirectory() + "/none.sqlite"
        let run = try await runFillguard(["recover", "--journal", journal, "--unsent-entries", "later"])
        #expect(run.status == 2 && run.standardError.contains("--unsent-entries must be send or refuse"), "\(run)")
        let help = try await runFillguard(["recover", "--help"])
        #expect(help.standardOutput.contains("--unsent-entries"), "\(help.standardOutput.suffix(800))")
        // simulate takes it for the journal it recovers, and only with one.
        let alone = try await runFillguard(["simulate", "--unsent-entries", "refuse", "--duration", "0.1"])
        #expect(alone.status == 2 && alone.standardError.contains("--unsent-entries says how a journal is recovered: it needs --journal PATH"), "\(alone)")
        let bad = try await runFillguard(["simulate", "--journal", journal, "--unsent-entries", "later", "--duration", "0.1"])
        #expect(bad.status == 2 && bad.standardError.contains("--unsent-entries must be send or refuse"), "\(bad)")
        #expect(!FileManager.default.fileExists(atPath: journal), "nothing created")
    }

    @Test("simulate takes plain decimal numbers only (no hexadecimal, exponent, nan) and refuses a duration that rounds to no time, exit 2 before anything runs",
          arguments: [(["--duration", "0x10"], "--duration takes a plain decimal number"),
                      (["--duration", "1e-300"], "--duration takes a plain decimal number"),
                      (["--duration", "0.0001"], "--duration must be a number of seconds from 0.001"),
                      (["--fault-rate", "1e-1"], "--fault-rate takes a plain decimal number"),
                      (["--fault-rate", "nan"], "--fault-rate takes a plain decimal number"),
                      (["--latency-ms", "1e3"], "--latency-ms must look like"),
                      (["--latency-ms", "0x10"], "--latency-ms must look like"),
                      (["--runner-threads", "1", "--runner-processors", "1024"], "processor numbers below 1024")])
    func simulateRefusesNumbersItWouldGuessAt(_ arguments: [String], _ message: String) async throws {
        let run = try await runFillguard(["simulate"] + arguments)
        #expect(run.status == 2 && run.standardError.contains(message), "\(run)")
    }

    @Test("a resumed simulate session opens no bracket on a held symbol (no symbolHeld refusals counted as violations) and names it")
    func resumedSessionLeavesHeldSymbolsAlone() async throws {
        let statePath = try temporaryDirectory() + "/run.exchange"
        let exchange = try SimulatedExchange(configuration: Self.market, symbols: ["S000": 248, "S001": 30], statePath: statePath)
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(Self.bracket("S000-1", "S000", price: 248))
        try await first.manager.open(Self.bracket("S001-2", "S001", price: 30))
        await first.settle()
        // S000's stop fills: its position is closed, and the session would open a new one there.
        exchange.setPrice(237, of: "S000")
        await first.settle()
        #expect(await first.manager.position("S000-1")?.status == .closed)
        let survivor = first.kill()
        // While the manager is down someone else buys 300 S000: FillGuard flat beside a position
        // at the broker, which only a person can explain. S001 is left as it was.
        try await exchange.submit(NewOrderRequest(orderID: "MANUAL-1", symbol: "S000", side: .buy, type: .market, quantity: 300,
                                                  timeInForce: .immediateOrCancel))

        var options = SimulationOptions()
        options.symbols = 2
        options.duration = .milliseconds(300)
        options.faultRate = 0
        options.journal = Journal(store: survivor)
        options.exchangeStatePath = statePath
        let report = try await SimulationSession(options: options).run()
        #expect(report.journal?.recovery.heldSymbols == ["S000"])
        #expect(report.rejected[.symbolHeld] == nil, "no bracket was tried on the held symbol: \(report.rejected)")
        #expect(!report.continuousViolations.contains { $0.hasPrefix("could not open") }, "\(report.continuousViolations)")
        #expect(report.text.contains("held: S000: nothing was sent or opened for it"), "\(report.text)")
        #expect(report.json.contains(#""heldSymbols":["S000"]"#))
        #expect(report.finalViolations.contains { $0.hasPrefix("S000: exchange net 300, FillGuard net 0") }, "the mismatch itself is still reported: \(report.finalViolations)")
    }
    @Test("a simulate session killed before its journal recorded anything (its exchange state names that journal, nothing more) runs again; another journal's state, or its own that traded, is still refused")
    func sessionKilledBeforeItsFirstRecordRunsAgain() async throws {
        let directory = try temporaryDirectory()
        var identities: [String: String] = [:]
        for name in ["own", "other", "traded"] {
            let store = try SQLiteJournalStore(path: "\(directory)/\(name).sqlite")
            identities[name] = store.identity
            await store.close()
        }
        // What a session killed in its first milliseconds leaves: the exchange state's header.
        for (journal, owner) in [("own", "own"), ("other", "own")] {
            let exchange = try SimulatedExchange(configuration: Self.market, symbols: ["S000": 248, "S001": 30], statePath: "\(directory)/\(journal).sqlite.exchange",
                                                 session: ExchangeSession(journalID: identities[owner]!, nativeModify: true, strategy: "cancelThenCreate"))
            // Clock entries only (the prices now and then), over more than one piece of the file read.
            for _ in 0..<2_000 { exchange.recordClock() }
        }
        #expect((try FileManager.default.attributesOfItem(atPath: "\(directory)/own.sqlite.exchange")[.size] as? Int ?? 0) > 65_536)
        let own = try await runFillguard(["simulate", "--journal", "\(directory)/own.sqlite", "--symbols", "2", "--duration", "0.2", "--fault-rate", "0"])
        #expect(own.status == 0 && own.standardOutput.contains("invariantViolations   0"), "\(own)")
        let other = try await runFillguard(["simulate", "--journal", "\(directory)/other.sqlite", "--symbols", "2", "--duration", "0.2"])
        #expect(other.status == 2 && other.standardError.contains("is new, but"), "\(other)")
        // A journal that holds nothing beside an exchange state of its own that traded (the
        // journal's records lost, say): refused, not taken for a new session.
        let traded = try SimulatedExchange(configuration: Self.market, symbols: ["S000": 248], statePath: "\(directory)/traded.sqlite.exchange",
                                           session: ExchangeSession(journalID: identities["traded"]!, nativeModify: true, strategy: "cancelThenCreate"))
        try await traded.submit(NewOrderRequest(orderID: "S000-1-en1", symbol: "S000", side: .buy, type: .limit(200), quantity: 10, timeInForce: .goodTillCancel))
        let refused = try await runFillguard(["simulate", "--journal", "\(directory)/traded.sqlite", "--symbols", "2", "--duration", "0.2"])
        #expect(refused.status == 2 && refused.standardError.contains("is new, but"), "\(refused)")
    }

    @Test("a resumed simulate session whose journal lost a position's records opens no bracket beside its orders still live (no violation counted for the refusals); the other symbol trades")
    func resumedSessionWaitsBesideOrphanedOrders() async throws {
        let statePath = try temporaryDirectory() + "/run.exchange"
        let exchange = try SimulatedExchange(configuration: Self.market, symbols: ["S000": 248, "S001": 30], statePath: statePath)
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(Self.bracket("S000-1", "S000", price: 248))
        await first.settle()
        _ = first.kill()
        // Flattened by hand while down; the stop and target still work. The journal is lost.
        try await exchange.submit(NewOrderRequest(orderID: "MANUAL-1", symbol: "S000", side: .sell, type: .market, quantity: 300,
                                                  timeInForce: .immediateOrCancel))
        let orphans = exchange.liveOrders(of: "S000").map(\.id)
        #expect(orphans.count == 2)

        var options = SimulationOptions()
        options.symbols = 2
        options.duration = .milliseconds(300)
        options.faultRate = 0
        options.journal = Journal(store: InMemoryJournalStore())
        options.exchangeStatePath = statePath
        let report = try await SimulationSession(options: options).run()
        #expect(report.journal?.recovery.unknownLiveOrders.keys.sorted() == ["S000"])
        #expect(!report.continuousViolations.contains { $0.hasPrefix("could not open") }, "\(report.continuousViolations)")
        #expect(report.rejected[.unknownOrdersLive] == 1, "tried once in 300 ms, then a second later: \(report.rejected)")
        // The exchange as the session left it (its state file, read again).
        let after = try SimulatedExchange(configuration: Self.market, symbols: [:], statePath: statePath)
        #expect(Set(after.liveOrders(of: "S000").map(\.id)) == Set(orphans), "nothing placed beside the orphans")
        #expect(!after.liveOrders(of: "S001").isEmpty, "S001 traded: \(after.liveOrders(of: "S001"))")
    }
}

/// A run of the debug `fillguard` binary that `swift build --build-tests` made beside the tests.
private struct FillguardRun: Sendable, CustomStringConvertible {
    var status: Int32
    var standardOutput: String
    var standardError: String
    var description: String { "exit \(status)\n\(standardError)" }
}

/// Runs `fillguard` with `arguments` to its end, its output sent to files (read once it exited).
private func runFillguard(_ arguments: [String]) async throws -> FillguardRun {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let directory = try temporaryDirectory()
    let outputPath = directory + "/stdout", errorPath = directory + "/stderr"
    for path in [outputPath, errorPath] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
    let process = Foundation.Process()
    process.executableURL = root.appendingPathComponent(".build/debug/fillguard")
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    let (exit, _) = try ChildExit.spawn(process) {
        process.standardOutput = FileHandle(forWritingAtPath: outputPath)
        process.standardError = FileHandle(forWritingAtPath: errorPath)
    }
    await exit.value()
    try #require(exit.hasExited, "fillguard \(arguments.joined(separator: " ")) did not end")
    let status = process.terminationStatus
    return FillguardRun(status: status, standardOutput: try String(contentsOfFile: outputPath, encoding: .utf8),
                        standardError: try String(contentsOfFile: errorPath, encoding: .utf8))
}
