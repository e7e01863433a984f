import FillGuardCore
import FillGuardFIX
import FillGuardSimulator
import Foundation
import Synchronization
import Testing

/// The `fillguard` executable next to this test binary (or FILLGUARD_BINARY); fails, never skips,
/// when it is missing.
func fillguardBinary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["FILLGUARD_BINARY"] { return path }
    let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var directory = me.deletingLastPathComponent()
    // On Linux the test binary is .build/<triple>/debug/FillGuardPackageTests.xctest; elsewhere it may be a bundle.
    while !directory.path.hasSuffix("/debug") && !directory.path.hasSuffix("/release") && directory.path != "/" {
        directory = directory.deletingLastPathComponent()
    }
    let binary = directory.appendingPathComponent("fillguard").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw FIXPeerError(description: "the fillguard executable is not built (\(binary) missing): run swift build --build-tests, or set FILLGUARD_BINARY")
    }
    return binary
}

/// What a child process printed and how it ended.
struct ChildRun: Sendable {
    var status: Int32
    var standardOutput: String
    var standardError: String
}

/// Runs `binary` with `arguments` to its end (killed after `timeout`, a failure guard).
func runChild(_ binary: String, _ arguments: [String], timeout: Duration = .seconds(180)) async throws -> ChildRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    let (exit, (output, errors)) = try ChildExit.spawn(process) {
        let pipes = (Pipe(), Pipe())
        process.standardOutput = pipes.0
        process.standardError = pipes.1
        return pipes
    }
    return try await withThrowingTaskGroup(of: ChildRun.self) { group in
        group.addTask {
            await withCheckedContinuation { continuation in
                // Blocking reads and the wait happen on a thread of their own, off the task pool.
                let thread = Thread {
                    let errorText = Mutex("")
                    let errorDone = DispatchSemaphore(value: 0)
                    let errorReader = Thread {
                        errorText.withLock { $0 = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
                        errorDone.signal()
                    }
                    errorReader.start()
                    let standardOutput = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                    exit.wait()
                    errorDone.wait()
                    continuation.resume(returning: ChildRun(status: process.terminationStatus, standardOutput: standardOutput,
                                                            standardError: errorText.withLock { $0 }))
                }
                thread.start()
            }
        }
        group.addTask {
            try await Task.sleep(for: timeout) // a failure guard, not synchronisation
            // Killed (SIGTERM could be ignored by a session that hangs): the readers above end
            // only once the child is gone.
            if !exit.hasExited { kill(process.processIdentifier, SIGKILL) }
            throw FIXPeerError(description: "\(binary) \(arguments.joined(separator: " ")) did not finish in \(timeout)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

@Suite("fillguard simulate --broker fix against the QuickFIX auto market", .serialized, .timeLimit(.minutes(5)))
struct SimulateOverFIXTests {
    @Test func shortSessionTradesOnItsOwnAndAgreesWithTheExchange() async throws {
        let binary = try fillguardBinary()
        let peer = try await FIXPeerProcess.launch(arguments: ["--auto-market", "11", "--quiet"])
        defer { peer.stop() }
        let run = try await runChild(binary, [
            "simulate", "--broker", "fix", "--fix-host", "127.0.0.1", "--fix-port", "\(peer.port)", "--fix-sender", "FG",
            "--fix-target", "EX", "--fix-heartbeat", "5", "--symbols", "6", "--duration", "3", "--seed", "5", "--json",
        ])
        #expect(run.status == 0, "simulate failed (\(run.status)):\n\(run.standardOutput)\n\(run.standardError)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(run.standardOutput.utf8)) as? [String: Any],
                                "not a JSON report: \(run.standardOutput)\n\(run.standardError)")
        #expect(json["broker"] as? String == "fix")
        #expect(json["invariantViolations"] as? Int == 0, "violations: \(json["violations"] ?? "-")")
        let fills = try #require(json["fills"] as? Int)
        #expect(fills > 0, "the auto market filled the market entries at least")
        #expect(json["fillsApplied"] as? Int == fills, "every fill received was applied once")
        #expect((json["positionsOpened"] as? Int ?? 0) >= 6)
        let operations = try #require(json["brokerOperations"] as? [String: Int])
        #expect((operations["submit"] ?? 0) > 0)
        let fix = try #require(json["fix"] as? [String: Any])
        #expect(fix["rejectsReceived"] as? Int == 0 && fix["rejectsSent"] as? Int == 0)
        #expect((fix["ordersChecked"] as? Int ?? 0) >= (json["positionsOpened"] as? Int ?? 0), "the final check saw the run's orders")

        // The exchange's own books, read over its control channel: every fill it made reached
        // FillGuard, and every open position is covered by exactly one stop and one target of |net|.
        let (nets, exchangeFills) = try await peer.positions()
        #expect(exchangeFills == fills, "the exchange made \(exchangeFills) fills, FillGuard received \(fills)")
        #expect(nets.count == 6)
        try await Self.expectEveryPositionCovered(peer)
        let rejects = peer.events.filter { $0.hasPrefix("sent-reject") || $0.hasPrefix("sent-business-reject") }
        #expect(rejects.isEmpty, "QuickFIX rejected: \(rejects)")
    }

    /// The exchange's books: every open position has exactly one stop and one target of |net| on
    /// its protective side, and a flat symbol has no live order.
    static func expectEveryPositionCovered(_ peer: FIXPeerProcess, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let (nets, _) = try await peer.positions()
        let live = try await peer.orders().values.filter { $0.isLive && $0.leaves != "0" }
        for (symbol, netText) in nets {
            let net = try #require(Quantity(netText), sourceLocation: sourceLocation)
            let orders = live.filter { $0.symbol == symbol }
            if net.isZero {
                #expect(orders.isEmpty, "\(symbol) is flat but has live orders: \(orders)", sourceLocation: sourceLocation)
                continue
            }
            let protective = net.units > 0 ? "2" : "1"
            let stops = orders.filter { $0.ordType == "3" || $0.ordType == "4" }
            let targets = orders.filter { $0.ordType == "2" && $0.side == protective }
            #expect(stops.count == 1 && stops.first?.side == protective && stops.first.flatMap { Quantity($0.leaves) } == net.magnitude,
                    "\(symbol) net \(net): stops \(stops)", sourceLocation: sourceLocation)
            #expect(targets.count == 1 && targets.first.flatMap { Quantity($0.leaves) } == net.magnitude, "\(symbol) net \(net): targets \(targets)",
                    sourceLocation: sourceLocation)
        }
    }

    /// A new directory for one test, and the journal and FIX store paths in it (the caller removes it).
    static func journalAndStorePaths() throws -> (directory: URL, journal: String, store: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fix-journal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return (directory, directory.appendingPathComponent("session.sqlite").path, directory.appendingPathComponent("fixstore").path)
    }

    @Test("a journaled session over FIX killed mid-trade: recover reconciles it with the exchange, and the next run resumes it")
    func journaledSessionSurvivesAKill() async throws {
        let binary = try fillguardBinary()
        let peer = try await FIXPeerProcess.launch(arguments: ["--auto-market", "6", "--no-log"])
        defer { peer.stop() }
        let (directory, journal, store) = try Self.journalAndStorePaths()
        defer { try? FileManager.default.removeItem(at: directory) }
        let session = ["--broker", "fix", "--fix-port", "\(peer.port)", "--fix-heartbeat", "5", "--journal", journal, "--fix-store", store]

        // Killed once the session resized a protective order (a replace reached the exchange):
        // fills were made and journaled, and more are coming.
        let killed = Process()
        killed.executableURL = URL(fileURLWithPath: binary)
        killed.arguments = ["simulate", "--symbols", "5", "--duration", "120", "--seed", "4", "--durability", "off"] + session
        killed.standardOutput = FileHandle.nullDevice
        killed.standardError = FileHandle.nullDevice
        let (killedExit, _) = try ChildExit.spawn(killed) {}
        let resized = try await peer.waitFor(timeout: .seconds(60)) { $0.hasPrefix("EVENT app G ") }
        kill(killed.processIdentifier, SIGKILL)
        await killedExit.value()
        try #require(killedExit.hasExited, "the killed session's end never came")
        #expect(killed.terminationReason == .uncaughtSignal, "the session was killed mid-trade (after \(resized))")
        let (_, madeBeforeRecovery) = try await peer.positions()
        #expect(madeBeforeRecovery > 0)

        // recover: rebuilds the journal, has the store's session resent what it missed, and
        // checks FillGuard against the exchange's order mass status.
        let recovered = try await runChild(binary, ["recover", "--json"] + session)
        #expect(recovered.status == 0, "recover failed (\(recovered.status)):\n\(recovered.standardError)")
        #expect(recovered.standardError.contains("recovered "), "\(recovered.standardError)")
        #expect(!recovered.standardError.contains("unreportedFill") && !recovered.standardError.contains("positionMismatch"),
                "\(recovered.standardError)")
        try await Self.expectEveryPositionCovered(peer)

        // The next run carries the journal's positions on, trades, and agrees with the exchange.
        let resumed = try await runChild(binary, ["simulate", "--symbols", "5", "--duration", "2", "--seed", "5", "--json"] + session)
        #expect(resumed.status == 0, "the resumed session failed (\(resumed.status)):\n\(resumed.standardOutput)\n\(resumed.standardError)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(resumed.standardOutput.utf8)) as? [String: Any],
                                "not a JSON report: \(resumed.standardOutput)\n\(resumed.standardError)")
        #expect(json["invariantViolations"] as? Int == 0, "violations: \(json["violations"] ?? "-")")
        let summary = try #require(json["journal"] as? [String: Any], "the report has the journal's part")
        #expect((summary["positionsRecovered"] as? Int ?? 0) >= 5, "the killed session's positions, one per symbol at least: \(summary)")
        #expect((summary["recordsWritten"] as? Int ?? 0) > 0)
        #expect(summary["failure"] is NSNull)
        #expect(summary["downtimeSimulatedMillis"] == nil, "no simulated downtime over FIX")
        try await Self.expectEveryPositionCovered(peer)
        let rejects = peer.events.filter { $0.hasPrefix("sent-reject") || $0.hasPrefix("sent-business-reject") }
        #expect(rejects.isEmpty, "QuickFIX rejected: \(rejects)")
    }

    @Test("a journaled session on an exchange other runs of its CompIDs traded on: its positions are its own account's, so a resume is not held")
    func journaledSessionBesideOtherRuns() async throws {
        let binary = try fillguardBinary()
        let peer = try await FIXPeerProcess.launch(arguments: ["--auto-market", "5", "--quiet", "--no-log"])
        defer { peer.stop() }
        let (directory, journal, store) = try Self.journalAndStorePaths()
        defer { try? FileManager.default.removeItem(at: directory) }
        let endpoint = ["--broker", "fix", "--fix-port", "\(peer.port)", "--symbols", "4", "--duration", "2"]
        // Another run of the same CompIDs leaves positions at the exchange (in its default account).
        let plain = try await runChild(binary, ["simulate"] + endpoint)
        #expect(plain.status == 0, "\(plain.standardError)")
        let first = try await runChild(binary, ["simulate", "--journal", journal, "--fix-store", store, "--fix-reset-on-logon", "Y"] + endpoint)
        #expect(first.status == 0, "\(first.standardOutput)\n\(first.standardError)")
        let resumed = try await runChild(binary, ["simulate", "--journal", journal, "--fix-store", store] + endpoint)
        #expect(resumed.status == 0 && !resumed.standardOutput.contains("held:"), "\(resumed.standardOutput)\n\(resumed.standardError)")
        #expect(resumed.standardOutput.contains(", account J"), "the report names the journal's account: \(resumed.standardOutput)")
        let recovered = try await runChild(binary, ["recover", "--journal", journal, "--fix-store", store] + endpoint.prefix(4))
        #expect(recovered.status == 0 && !recovered.standardError.contains("positionMismatch"), "\(recovered.standardError)")
    }

    @Test("a journal over FIX is refused without a session store, against the simulated exchange, and with another FIX session")
    func journalOverFIXRefusals() async throws {
        let binary = try fillguardBinary()
        let peer = try await FIXPeerProcess.launch(arguments: ["--auto-market", "8", "--quiet", "--no-log"])
        defer { peer.stop() }
        let (directory, journal, store) = try Self.journalAndStorePaths()
        defer { try? FileManager.default.removeItem(at: directory) }
        let endpoint = ["--broker", "fix", "--fix-port", "\(peer.port)", "--fix-heartbeat", "5"]

        let storeless = try await runChild(binary, ["simulate", "--journal", journal, "--duration", "1"] + endpoint)
        #expect(storeless.status == 2, "\(storeless.status)")
        #expect(storeless.standardError.contains("needs a FIX session store"), "\(storeless.standardError)")
        #expect(!FileManager.default.fileExists(atPath: journal), "nothing was created")

        // A logon that fails (another CompID, which the exchange refuses) records nothing and
        // leaves no journal behind.
        let refusedLogon = try await runChild(binary, ["simulate", "--journal", journal, "--fix-store", store, "--fix-sender", "NOBODY",
                                                        "--duration", "1"] + endpoint)
        #expect(refusedLogon.status == 2, "\(refusedLogon.standardError)")
        #expect(!FileManager.default.fileExists(atPath: journal), "the refused run's journal was removed")
        #expect(!FileManager.default.fileExists(atPath: store), "and the store it created")

        let first = try await runChild(binary, ["simulate", "--journal", journal, "--fix-store", store, "--symbols", "2", "--duration", "1"] + endpoint)
        #expect(first.status == 0, "\(first.standardOutput)\n\(first.standardError)")
        let simulated = try await runChild(binary, ["simulate", "--journal", journal, "--duration", "1"])
        #expect(simulated.status == 2 && simulated.standardError.contains("use it with --broker fix"), "\(simulated.standardError)")
        #expect(!FileManager.default.fileExists(atPath: journal + ".exchange"), "no simulated exchange was started beside it")
        // The store in use by another process (this one): refused before the Logon.
        do {
            let held = try FileFIXSessionStore(directory: store)
            let busy = try await runChild(binary, ["simulate", "--journal", journal, "--fix-store", store, "--duration", "1"] + endpoint)
            #expect(busy.status == 2 && busy.standardError.contains("FIX store \(store): in use by another process (process \(getpid()))"), "\(busy.standardError)")
            #expect(held.nextSenderSeqNum > 1, "the store was left as it was")
        }
        let storelessRecover = try await runChild(binary, ["recover", "--journal", journal] + endpoint)
        #expect(storelessRecover.status == 2 && storelessRecover.standardError.contains("kept a FIX session store: give it"), "\(storelessRecover.standardError)")
        // A new store against the session the exchange kept: refused at the Logon, with what to do.
        let newStore = try await runChild(binary, ["simulate", "--journal", journal + "-2", "--fix-store", store + "-2", "--duration", "1"] + endpoint)
        #expect(newStore.status == 2 && newStore.standardError.contains("MsgSeqNum too low")
                    && newStore.standardError.contains("--fix-reset-on-logon Y"), "\(newStore.standardError)")
        #expect(!FileManager.default.fileExists(atPath: store + "-2") && !FileManager.default.fileExists(atPath: journal + "-2"))
        // recover too: a store it creates, refused at the Logon, is not left behind.
        let newStoreRecover = try await runChild(binary, ["recover", "--journal", journal, "--fix-store", store + "-3"] + endpoint)
        #expect(newStoreRecover.status == 2 && newStoreRecover.standardError.contains("MsgSeqNum too low"), "\(newStoreRecover.standardError)")
        #expect(!FileManager.default.fileExists(atPath: store + "-3"), "the store recover created was removed")
        let otherSession = try await runChild(binary, ["recover", "--journal", journal, "--fix-store", store, "--fix-target", "OTHER"] + endpoint)
        #expect(otherSession.status == 2 && otherSession.standardError.contains("FIX session FG->EX"), "\(otherSession.standardError)")
        let otherSimulate = try await runChild(binary, ["simulate", "--journal", journal, "--fix-store", store, "--fix-sender", "X",
                                                         "--duration", "1"] + endpoint)
        #expect(otherSimulate.status == 2 && otherSimulate.standardError.contains("FIX session FG->EX"), "\(otherSimulate.standardError)")
        // The journal trades in an account of its own (recorded); another one is refused.
        let otherAccount = try await runChild(binary, ["recover", "--journal", journal, "--fix-store", store, "--fix-account", "SOMEONE"] + endpoint)
        #expect(otherAccount.status == 2 && otherAccount.standardError.contains("the journal's orders are in the account J"), "\(otherAccount.standardError)")

        // A journal of the simulated exchange is not taken over FIX.
        let simulatedJournal = directory.appendingPathComponent("simulated.sqlite").path
        let local = try await runChild(binary, ["simulate", "--journal", simulatedJournal, "--symbols", "2", "--duration", "0.5"])
        #expect(local.status == 0, "\(local.standardError)")
        let overFIX = try await runChild(binary, ["simulate", "--journal", simulatedJournal, "--fix-store", store, "--duration", "1"] + endpoint)
        #expect(overFIX.status == 2 && overFIX.standardError.contains("simulated exchange"), "\(overFIX.standardError)")
    }

    @Test("a stop requested while the Logon is awaited ends the wait at once, as an interruption, with nothing traded")
    func stopWhileLoggingOn() async throws {
        // An endpoint that takes the connection (the kernel's backlog) and never answers.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 4) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        try #require(bound)
        var settings = FIXSettings()
        settings.port = Int(UInt16(bigEndian: address.sin_port))
        settings.logonTimeout = 600   // the wait the stop must cut short
        var options = SimulationOptions()
        options.symbols = 2
        options.stop = SimulationStop()
        options.stop?.request()
        do {
            _ = try await FIXSimulationSession(options: options, fix: FIXSimulationOptions(settings: settings)).run()
            Issue.record("the session ran")
        } catch let error as FIXSimulationError {
            #expect(error.interrupted, "\(error)")
            #expect(error.description.contains("nothing was traded"))
        }
    }

    @Test("the exchange going away mid-session: trading ends, the wind-down says how long it may wait, and waits that long once")
    func exchangeGoneDuringSession() async throws {
        let peer = try await FIXPeerProcess.launch(arguments: ["--auto-market", "4", "--quiet", "--no-log"])
        defer { peer.stop() }
        var settings = FIXSettings()
        settings.port = peer.port
        var fix = FIXSimulationOptions(settings: settings)
        fix.settleTimeout = .seconds(5)
        var options = SimulationOptions()
        options.symbols = 4
        options.duration = .seconds(2)
        options.seed = 3
        let stopped = Mutex(false)
        let reports = Mutex<[SimulationProgress]>([])
        let started = ContinuousClock.now
        let report = try await FIXSimulationSession(options: options, fix: fix).run { progress in
            reports.withLock { $0.append(progress) }
            // The exchange quits one second into trading (its books are gone with it).
            if progress.elapsed >= .seconds(1), progress.settlingWithin == nil, stopped.withLock({ done in defer { done = true }; return !done }) {
                peer.stop()
            }
        }
        let took = ContinuousClock.now - started
        let seen = reports.withLock { $0 }
        #expect(stopped.withLock { $0 }, "the exchange was stopped during trading")
        let settling = seen.filter { $0.settlingWithin != nil }
        #expect(settling.count == 1 && settling.first?.settlingWithin == .seconds(5), "one wind-down notice: \(settling)")
        #expect(seen.last?.settlingWithin != nil, "the notice comes after every trading report")
        #expect(settling.first?.brokerDown != nil, "the session is still down at the wind-down: never said to be up again")
        #expect(report.invariantViolations > 0, "a check that could not reach the exchange fails the session")
        #expect(report.finalViolations.contains { $0.contains("did not answer") || $0.contains("did not settle") || $0.contains("come to rest") },
                "\(report.finalViolations)")
        // The unsubscribe and the final check share one settle timeout: 2 s of trading and 5 s of
        // wind-down, where two timeouts in a row would take 12 s. (Not a speed check: the gap
        // between one timeout and two is what is measured, with 4 s to spare for a loaded machine.)
        #expect(took < .seconds(11), "the session took \(took)")
    }

    /// Once an order reached the exchange: drops the connection, refuses the next `count` Logons,
    /// then lets the session back in. Returns where the peer's lines stood at the drop.
    private static func dropRefusingLogons(_ peer: FIXPeerProcess, count: Int) async throws -> Int {
        try await peer.waitFor(timeout: .seconds(60)) { $0.hasPrefix("EVENT app D ") }
        try await peer.command("reject-logon on")
        let dropped = peer.lines.count
        try await peer.command("drop")
        var from = dropped
        for _ in 0..<count {
            try await peer.waitFor(from: from, timeout: .seconds(30)) { $0 == "EVENT logon-rejected" }
            let lines = peer.lines
            from = (lines.indices.first { $0 >= from && lines[$0] == "EVENT logon-rejected" } ?? lines.count - 1) + 1
        }
        try await peer.command("reject-logon off")
        return dropped
    }

    @Test("a FIX session that drops and is refused its Logon mid-session is said on standard error as it happens, and so is its return")
    func sessionDownIsSaidAsItHappens() async throws {
        let binary = try fillguardBinary()
        let peer = try await FIXPeerProcess.launch(arguments: ["--auto-market", "4", "--no-log"])
        defer { peer.stop() }
        let child = Task {
            try await runChild(binary, ["simulate", "--broker", "fix", "--fix-port", "\(peer.port)", "--symbols", "2", "--duration", "6",
                                        "--fix-settle-timeout", "3"])
        }
        // Trading (an order reached the exchange): the exchange drops the connection and refuses
        // four Logons in a row (with the reconnect backoff, the session is down and refused for
        // most of a second, over several of its 100 ms checks); then it lets it back in.
        let dropped = try await Self.dropRefusingLogons(peer, count: 4)
        let back = try await peer.waitFor(from: dropped, timeout: .seconds(30)) { $0.hasPrefix("EVENT logon ") }
        // The new session subscribes to the market again: its prices move on.
        try await peer.waitFor(from: dropped, timeout: .seconds(30)) { $0.hasPrefix("EVENT subscribed ") }
        let run = try await child.value
        let said = run.standardError
        #expect(said.contains("fillguard: the FIX session is down ("), "\(said)")
        #expect(said.contains("logon rejected: "), "the refused Logon is named (\(back)): \(said)")
        #expect(said.contains("fillguard: the FIX session is up again"), "\(said)")
        #expect(run.status == 0, "the session came back and settled: \(run.standardOutput)\n\(said)")
    }

    @Test("a FIX session that comes back only after trading ended is said to be up again while settling")
    func returnWhileSettlingIsSaid() async throws {
        let binary = try fillguardBinary()
        let peer = try await FIXPeerProcess.launch(arguments: ["--auto-market", "4", "--no-log"])
        defer { peer.stop() }
        let child = Task {
            try await runChild(binary, ["simulate", "--broker", "fix", "--fix-port", "\(peer.port)", "--symbols", "2", "--duration", "1",
                                        "--fix-settle-timeout", "30"])
        }
        // Five Logons refused: with the reconnect backoff (0.1 s doubling) that is over 1.5 s even
        // with the most jitter, past the 1 s of trading.
        _ = try await Self.dropRefusingLogons(peer, count: 5)
        let run = try await child.value
        let said = run.standardError
        #expect(said.contains("fillguard: the FIX session is down ("), "\(said)")
        let downAt = try #require(said.range(of: "fillguard: the FIX session is down ("))
        #expect(said[downAt.upperBound...].contains("fillguard: the FIX session is up again"), "the return while settling is said: \(said)")
        #expect(run.status == 0, "the session came back and settled: \(run.standardOutput)\n\(said)")
    }

    @Test func refusesToRunWithoutMarketData() async throws {
        let binary = try fillguardBinary()
        let peer = try await FIXPeerProcess.launch()
        defer { peer.stop() }
        let run = try await runChild(binary, ["simulate", "--broker", "fix", "--fix-port", "\(peer.port)", "--duration", "1"])
        #expect(run.status == 2)
        #expect(run.standardError.contains("gives no market data"), "\(run.standardError)")
        let unusable = try await runChild(binary, ["simulate", "--broker", "fix", "--duration", "1"])
        #expect(unusable.status == 2 && unusable.standardError.contains("--fix-port"), "\(unusable.standardError)")
    }
}

@Suite("bench-fix against the QuickFIX auto market", .serialized, .timeLimit(.minutes(5)))
struct FIXBenchTests {
    @Test func burstAndPacedRunsCountEveryFillAndAgreeWithTheExchange() async throws {
        let peer = try await FIXPeerProcess.launch(arguments: ["--auto-market", "3", "--market-fills", "5", "--quiet", "--no-log"])
        defer { peer.stop() }
        var settings = FIXSettings()
        settings.port = peer.port
        var options = FIXBenchOptions(settings: settings)
        options.positions = 40
        options.quantity = 500
        options.timeout = .seconds(60)
        let burst = try await FIXBench.run(options)
        #expect(burst.violations.isEmpty, "\(burst.violations)")
        #expect(burst.fills == 200, "40 entries in 5 fills each")
        #expect(burst.fillsPerSecond > 0 && burst.reaction.count > 0)
        #expect(burst.protection.count == 200, "every fill is covered by an acknowledged protective order")
        #expect((burst.operations[.submit] ?? 0) == 120, "an entry, a stop and a target per position")
        options.positions = 10
        options.positionsPerSecond = 200
        options.runID = FIXSimulationOptions.makeRunID()
        let paced = try await FIXBench.run(options)
        #expect(paced.violations.isEmpty, "\(paced.violations)")
        #expect(paced.fills == 50 && paced.protection.count == 50)
        let (_, exchangeFills) = try await peer.positions()
        #expect(exchangeFills == 250, "the exchange made exactly the fills FillGuard counted")
        let rejects = peer.events.filter { $0.hasPrefix("sent-reject") || $0.hasPrefix("sent-business-reject") }
        #expect(rejects.isEmpty, "QuickFIX rejected: \(rejects)")
    }
}
