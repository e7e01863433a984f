import FillGuard
import FillGuardCore
import FillGuardSimulator
import Logging
import Synchronization
import Testing

extension Logger {
    static var quiet: Logger {
        var logger = Logger(label: "fillguard.test")
        logger.logLevel = .critical
        return logger
    }
}

/// One "process": a manager with its journal and its connection to the (shared, surviving) exchange.
final class Process: Sendable {
    let manager: FillManager
    let connection: CrashableBroker
    let store: InMemoryJournalStore
    let journal: Journal
    let feed: Task<Void, Never>
    let report: RecoveryReport

    /// Starts a process on `store`: recover, then consume the exchange's reports.
    init(exchange: SimulatedExchange, store: InMemoryJournalStore, snapshotInterval: Int = 1_000,
         unknownOrders: UnknownOrderPolicy = .leave, configure: (inout FillGuardConfiguration) -> Void = { _ in },
         prepare: (CrashableBroker) -> Void = { _ in }, recoverBeforeReconciling: (FillManager) async -> Void = { _ in }) async throws {
        self.store = store
        connection = CrashableBroker(exchange)
        journal = Journal(store: store, snapshotInterval: snapshotInterval)
        var configuration = FillGuardConfiguration(retry: RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5)),
                                                   rearmDelay: nil)
        configuration.unknownOrders = unknownOrders
        configure(&configuration)
        let manager = FillManager(broker: connection, journal: journal, configuration: configuration, logger: .quiet)
        self.manager = manager
        prepare(connection)
        // Connect first (reports wait in the stream), then reconcile, as with a real broker.
        let events = connection.events()
        report = try await manager.recover(beforeReconciling: { await recoverBeforeReconciling(manager) })
        feed = Task {
            for await event in events { manager.receive(event) }
        }
    }

    /// Waits until every report on this connection is applied and nothing is in flight.
    func settle() async {
        await connection.exchange.settle(manager)
        await journal.flush()
    }

    /// Kills the process: the connection dies, and what the journal had durably written is all
    /// that survives (a copy of the store now).
    func kill() -> InMemoryJournalStore {
        let survivor = store.fork()
        connection.kill()
        feed.cancel()
        return survivor
    }
}

@Suite("Recovery and reconciliation", .timeLimit(.minutes(5)))
struct RecoveryTests {
    static let symbol: Symbol = "GLD"

    private func exchange() -> SimulatedExchange {
        var configuration = SimulatorConfiguration(seed: 7)
        configuration.partialFillAbove = nil
        configuration.volatilityBasisPoints = 0
        return SimulatedExchange(configuration: configuration, symbols: [Self.symbol: Price("248")!])
    }

    private func bracket(_ id: PositionID = "P1") -> BracketSpec {
        BracketSpec(positionID: id, symbol: Self.symbol, side: .buy, quantity: 300, entryType: .market,
                    stopLoss: Price("240"), takeProfit: Price("260"),
                    scaleIns: [BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("246")!)),
                               BracketSpec.ScaleIn(quantity: 100, type: .limit(Price("244")!))])
    }

    /// Checks FillGuard against the exchange: same net, protective orders live at the exchange
    /// for exactly |net| each, no violations, every execution applied once.
    private func expectProtectedAndExact(_ process: Process, _ exchange: SimulatedExchange,
                                         sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let positions = await process.manager.positions()
        let net = positions.reduce(Quantity.zero) { $0 + $1.netQuantity }
        #expect(net == exchange.netPosition(of: Self.symbol), "net equals the sum of the exchange's fills", sourceLocation: sourceLocation)
        #expect(await process.manager.invariantViolations().isEmpty, sourceLocation: sourceLocation)
        let live = exchange.liveOrders(of: Self.symbol)
        let stops = live.filter { if case .stop = $0.type { return true } else { return false } }
        let targets = live.filter { if case .limit = $0.type { return $0.side == .sell } else { return false } }
        if net.isZero {
            #expect(stops.isEmpty, sourceLocation: sourceLocation)
        } else {
            #expect(stops.count == 1, "exactly one stop at the exchange, got \(stops.map(\.id))", sourceLocation: sourceLocation)
            #expect(stops.first?.openQuantity == net.magnitude, sourceLocation: sourceLocation)
            #expect(targets.count == 1, "exactly one target at the exchange, got \(targets.map(\.id))", sourceLocation: sourceLocation)
            #expect(targets.first?.openQuantity == net.magnitude, sourceLocation: sourceLocation)
        }
        let executions = exchange.allExecutions(of: Self.symbol)
        let filled = positions.flatMap(\.orders).reduce(Quantity.zero) { $0 + $1.filledQuantity }
        #expect(filled == executions.reduce(Quantity.zero) { $0 + $1.lastQuantity }, "each execution counted exactly once",
                sourceLocation: sourceLocation)
    }

    @Test("a restart rebuilds exactly the state the journal holds", arguments: [1, 3, 1_000])
    func restartRebuildsState(snapshotInterval: Int) async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore(), snapshotInterval: snapshotInterval)
        try await first.manager.open(bracket())
        await first.settle()
        exchange.setPrice(Price("246")!, of: Self.symbol) // first scale-in fills: protective orders grow to 600
        await first.settle()
        let before = await first.manager.positions()
        #expect(before.first?.netQuantity == 600)
        if snapshotInterval < 1_000 { #expect(first.journal.statistics.snapshots > 0) }

        let second = try await Process(exchange: exchange, store: first.kill(), snapshotInterval: snapshotInterval)
        #expect(second.report.positions == 1)
        #expect(second.report.corrections.isEmpty, "nothing changed while down: \(second.report.corrections)")
        await second.settle()
        #expect(await second.manager.positions() == before)
        try await expectProtectedAndExact(second, exchange)
        #expect(exchange.statistics.requests["submit"] == 5, "entry, two scale-ins, stop and target: nothing sent twice")

        // The restarted manager carries on: the second scale-in fills, everything resizes.
        exchange.setPrice(Price("244")!, of: Self.symbol)
        await second.settle()
        #expect(await second.manager.position("P1")?.netQuantity == 700)
        try await expectProtectedAndExact(second, exchange)
    }

    /// P1 opened and settled, then the process is killed and scale-in 0 fills while nobody
    /// listens (the exchange long 600). Returns what the journal kept.
    private func scaleInFilledWhileDown(on exchange: SimulatedExchange) async throws -> InMemoryJournalStore {
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        let survivor = first.kill()
        exchange.setPrice(Price("245")!, of: Self.symbol)
        return survivor
    }

    @Test("fills made while the manager was down are adopted and protected")
    func fillsWhileDownAreAdopted() async throws {
        let exchange = exchange()
        let survivor = try await scaleInFilledWhileDown(on: exchange)
        #expect(exchange.netPosition(of: Self.symbol) == 600)

        let second = try await Process(exchange: exchange, store: survivor)
        let adopted = second.report.corrections.filter { $0.kind == .adoptedFill }
        #expect(adopted.count == 1)
        #expect(second.report.corrections.allSatisfy { $0.kind != .positionMismatch })
        await second.settle()
        try await expectProtectedAndExact(second, exchange)

        // A third start finds nothing to correct, and counts nothing twice.
        let third = try await Process(exchange: exchange, store: second.kill())
        #expect(third.report.corrections.isEmpty, "\(third.report.corrections)")
        await third.settle()
        try await expectProtectedAndExact(third, exchange)
    }

    @Test("open orders that cannot be read (one unreadable order fails the list) cost only that list: fills made while down are still adopted, the nets compared, every order asked about on its own")
    func unreadableOpenOrdersStillReconcileTheRest() async throws {
        let exchange = exchange()
        let survivor = try await scaleInFilledWhileDown(on: exchange)
        let second = try await Process(exchange: exchange, store: survivor, prepare: { $0.refuseOpenOrders() })
        #expect(second.report.corrections.contains { $0.kind == .notReconciled && $0.message.contains("open orders could not be read") })
        #expect(second.report.corrections.filter { $0.kind == .adoptedFill }.count == 1, "\(second.report.corrections)")
        await second.settle()
        #expect(await second.manager.position("P1")?.netQuantity == 600)
        try await expectProtectedAndExact(second, exchange)
    }

    @Test("retired positions and a window far smaller than the fills: a restart re-applies nothing, reports nothing spurious, adopts what was missed once")
    func retirementAndSmallWindowSurviveRestart() async throws {
        let exchange = exchange()
        let configure: (inout FillGuardConfiguration) -> Void = { configuration in
            configuration.executionWindow = 2
            configuration.retainedClosedPositions = 0
        }
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore(), snapshotInterval: 3, configure: configure)
        try await first.manager.open(bracket())
        await first.settle()
        exchange.setPrice(Price("246")!, of: Self.symbol) // P1's first scale-in fills
        await first.settle()
        exchange.setPrice(Price("260")!, of: Self.symbol) // the target fills everything: P1 closes, then is retired
        await first.settle()
        let second = BracketSpec(positionID: "P2", symbol: Self.symbol, side: .buy, quantity: 300, entryType: .market,
                                 stopLoss: Price("250"), takeProfit: Price("280"),
                                 scaleIns: [BracketSpec.ScaleIn(quantity: 300, type: .limit(Price("258")!)),
                                            BracketSpec.ScaleIn(quantity: 100, type: .limit(Price("256")!))])
        try await first.manager.open(second)
        await first.settle()
        #expect(await first.manager.position("P1") == nil, "P1 was retired")
        exchange.setPrice(Price("258")!, of: Self.symbol) // P2's first scale-in fills
        await first.settle()
        let before = await first.manager.positions()
        #expect(before.map(\.id) == ["P2"])
        #expect(before.first?.netQuantity == exchange.netPosition(of: Self.symbol))

        // Restart: every execution at the exchange (P1's retired orders included, most ids long
        // out of the window) is known to be booked. Nothing is re-applied or reported.
        let restarted = try await Process(exchange: exchange, store: first.kill(), snapshotInterval: 3, configure: configure)
        #expect(restarted.report.corrections.isEmpty, "\(restarted.report.corrections)")
        await restarted.settle()
        #expect(await restarted.manager.positions() == before)
        #expect(restarted.manager.statistics.rejected.isEmpty)

        // A fill made while down is adopted exactly once.
        let survivor = restarted.kill()
        exchange.setPrice(Price("256")!, of: Self.symbol) // P2's second scale-in fills while nobody listens
        let third = try await Process(exchange: exchange, store: survivor, snapshotInterval: 3, configure: configure)
        let adopted = third.report.corrections.filter { $0.kind == .adoptedFill }
        #expect(adopted.count == 1, "\(third.report.corrections)")
        #expect(third.report.corrections.allSatisfy { $0.kind == .adoptedFill }, "\(third.report.corrections)")
        await third.settle()
        let positions = await third.manager.positions()
        #expect(positions.first?.netQuantity == 700)
        #expect(positions.first?.netQuantity == exchange.netPosition(of: Self.symbol))
        #expect(await third.manager.invariantViolations().isEmpty)
        #expect(third.manager.statistics.rejected.isEmpty)
    }

    @Test("operations whose answer was lost are resolved by asking the broker, never resent blindly")
    func unknownOutcomesAreResolved() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        first.connection.holdAcknowledgements()
        try await first.manager.open(bracket())
        // Entry, two scale-ins, then the stop and the target after the entry's fill: five
        // requests reach the exchange, no answer comes back.
        await first.connection.waitForHeldRequests(5)
        #expect(exchange.liveOrders(of: Self.symbol).count == 4)
        await first.journal.flush()

        let second = try await Process(exchange: exchange, store: first.kill())
        let resolved = second.report.corrections.filter { $0.kind == .resolvedOperation }
        #expect(resolved.count == 5, "\(second.report.corrections)")
        #expect(resolved.allSatisfy { $0.message.contains("accepted") })
        await second.settle()
        try await expectProtectedAndExact(second, exchange)
        #expect(exchange.statistics.requests["submit"] == 5, "no order was submitted twice")
    }

    @Test("a size changed at the broker behind FillGuard's back is taken, then fixed to the rules")
    func wrongSizesAreFixed() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        let stop = try #require(exchange.liveOrders(of: Self.symbol).first { if case .stop = $0.type { return true } else { return false } })
        let survivor = first.kill()
        try await exchange.modify(ModifyOrderRequest(orderID: stop.id, symbol: Self.symbol, newQuantity: 900)) // by hand, while down

        let second = try await Process(exchange: exchange, store: survivor)
        #expect(second.report.corrections.map(\.kind) == [.sizeDiffers], "\(second.report.corrections)")
        await second.settle()
        try await expectProtectedAndExact(second, exchange)
        #expect(exchange.order(stop.id, of: Self.symbol)?.openQuantity == 300, "resized back to |net|")
    }

    @Test("a role blocked by a permanent failure is re-armed after a restart (its cool-down timer died with the process)")
    func blockedRolesAreRearmed() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        first.connection.refuseNextSubmit(containing: "-sl")
        try await first.manager.open(bracket())
        await first.settle()
        #expect(exchange.liveOrders(of: Self.symbol).allSatisfy { if case .stop = $0.type { return false } else { return true } },
                "the stop was refused and (with no re-arm timer) not placed")

        let second = try await Process(exchange: exchange, store: first.kill())
        #expect(second.report.corrections.contains { $0.kind == .resumedWork })
        await second.settle()
        try await expectProtectedAndExact(second, exchange)
    }

    @Test("with the adopt policy, an unknown protective order joins the position; a duplicate is cancelled, others are left")
    func adoptUnknownOrders() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(BracketSpec(positionID: "P1", symbol: Self.symbol, side: .buy, quantity: 300, entryType: .market,
                                                 stopLoss: Price("240"), takeProfit: Price("260")))
        await first.settle()
        let survivor = first.kill()
        // By hand while FillGuard was down: its stop cancelled and replaced by a stop of the wrong
        // size; plus a duplicate target and a buy limit that is no protective order.
        let ours = try #require(exchange.liveOrders(of: Self.symbol).first { if case .stop = $0.type { return true } else { return false } })
        try await exchange.cancel(CancelOrderRequest(orderID: ours.id, symbol: Self.symbol))
        try await exchange.submit(NewOrderRequest(orderID: "HAND-SL", symbol: Self.symbol, side: .sell, type: .stop(Price("239")!),
                                                  quantity: 100, timeInForce: .goodTillCancel))
        try await exchange.submit(NewOrderRequest(orderID: "HAND-TP", symbol: Self.symbol, side: .sell, type: .limit(Price("261")!),
                                                  quantity: 300, timeInForce: .goodTillCancel))
        try await exchange.submit(NewOrderRequest(orderID: "HAND-BUY", symbol: Self.symbol, side: .buy, type: .limit(Price("200")!),
                                                  quantity: 5, timeInForce: .goodTillCancel))

        let second = try await Process(exchange: exchange, store: survivor, unknownOrders: .adopt)
        let unknown = second.report.corrections.filter { $0.kind == .unknownBrokerOrder }
        #expect(unknown.count == 3)
        #expect(unknown.first { $0.orderID == "HAND-BUY" }?.message.contains("left working") == true)
        await second.settle()
        // Protected exactly once per role, whichever orders carry it.
        try await expectProtectedAndExact(second, exchange)
        #expect(exchange.order("HAND-TP", of: Self.symbol)?.state == .cancelled, "a duplicate target is cancelled")
        #expect(exchange.order("HAND-BUY", of: Self.symbol)?.state == .live, "not protective: left working")
    }

    /// A process that opened the bracket, saw its first scale-in fill and the resizes it
    /// caused, then was killed: the exchange, and the journal as it survived.
    private func scaledInAndKilled() async throws -> (SimulatedExchange, InMemoryJournalStore) {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        exchange.setPrice(Price("246")!, of: Self.symbol)
        await first.settle()
        return (exchange, first.kill())
    }

    @Test("a torn journal tail is dropped with a message, and reconciliation makes up for it")
    func tornTail() async throws {
        let (exchange, survivor) = try await scaledInAndKilled()
        survivor.appendTornRecord()

        let second = try await Process(exchange: exchange, store: survivor)
        #expect(second.report.notices.count == 1)
        #expect(second.report.notices.first?.contains("torn") == true)
        await second.settle()
        try await expectProtectedAndExact(second, exchange)
    }

    @Test("records missing from the middle of the journal (an input, an intent) fail recovery loudly, never rebuild a wrong position",
          arguments: [JournalRecord.Kind.input, .intent])
    func missingMiddleRecordsAreCorruption(kind: JournalRecord.Kind) async throws {
        let (exchange, survivor) = try await scaledInAndKilled()
        let sequences = survivor.rows.filter { $0.kind == kind }.map(\.sequence)
        let newest = survivor.rows.map(\.sequence).max() ?? 0
        // The first record of that kind with later records after it: a hole, not a lost tail.
        let victim = try #require(sequences.first { $0 < newest })
        survivor.removeRecords { $0.sequence == victim && $0.kind == kind }
        do {
            _ = try await Process(exchange: exchange, store: survivor)
            Issue.record("recovery rebuilt a journal with a hole in it")
        } catch let error as JournalError {
            #expect(error.code == .corrupted)
            #expect(error.message.contains("missing records"), "\(error)")
        }
    }

    @Test("a record renumbered onto another's number, or filed under another symbol, fails recovery (it was taken as a duplicate, or refused and skipped)")
    func renumberedOrMovedRecordsAreCorruption() async throws {
        let (exchange, survivor) = try await scaledInAndKilled()
        // An intent's number damaged into its predecessor's.
        let renumbered = survivor.fork()
        let intents = renumbered.rows.filter { $0.kind == .intent }.map(\.sequence).sorted()
        // The last intent of its input: its number hides in its predecessor's, and no hole shows.
        let victim = try #require(intents.first { intents.contains($0 - 1) && !intents.contains($0 + 1) })
        renumbered.rewriteRecords { if $0.sequence == victim && $0.kind == .intent { $0.sequence = victim - 1 } }
        do {
            _ = try await Process(exchange: exchange, store: renumbered)
            Issue.record("a record renumbered onto another's was dropped as a duplicate")
        } catch let error as JournalError {
            #expect(error.code == .corrupted, "\(error)")
        }
        // A record filed under another symbol, numbered as that symbol's first: only what it
        // says gives it away (GLD's own journal stays whole).
        let moved = survivor.fork()
        let open = try #require(moved.rows.first { $0.kind == .input && $0.sequence == 1 << 20 })
        var copy = open
        copy.symbol = "SLV"
        try await moved.append([copy])
        do {
            _ = try await Process(exchange: exchange, store: moved)
            Issue.record("a record moved to another symbol's journal was replayed there")
        } catch let error as JournalError {
            #expect(error.code == .corrupted, "\(error)")
        }
    }

    /// A short simulated session's journal as it stood at its last progress report while
    /// trading, as if the process were killed there (a clean end would snapshot everything); the
    /// exchange's state is left at `exchangeStatePath`.
    private static func journalKilledWhileTrading(exchangeStatePath: String) async throws -> InMemoryJournalStore {
        let store = InMemoryJournalStore()
        var options = SimulationOptions()
        options.symbols = 3
        options.duration = .milliseconds(300)
        options.faultRate = 0
        options.journal = Journal(store: store)
        options.exchangeStatePath = exchangeStatePath
        let killedHere = Mutex<InMemoryJournalStore?>(nil)
        _ = try await SimulationSession(options: options).run { progress in
            if progress.settlingWithin == nil, progress.fills > 0 { killedHere.withLock { $0 = store.fork() } }
        }
        return try #require(killedHere.withLock { $0 })
    }

    @Test("recover reports a journal it cannot write (a full disk) as a failure, never as corrections it did not apply")
    func recoveryThatCannotJournalFails() async throws {
        let directory = try temporaryDirectory()
        let survivor = try await Self.journalKilledWhileTrading(exchangeStatePath: directory + "/run.exchange")
        // And it lost its last writes (durability off, a power cut): recovery has corrections to
        // journal, and the disk is full.
        survivor.dropNewestRecords(10)
        survivor.failNextAppend(with: JournalError(.storage, "disk full"))
        let recovery = RecoverySession(journal: Journal(store: survivor), exchangeStatePath: directory + "/run.exchange")
        do {
            _ = try await recovery.run(logger: .quiet)
            Issue.record("a recovery whose journal failed reported an outcome")
        } catch let error as JournalError {
            #expect(error.code == .storage)
        }
    }

    @Test("recover reports a journal that fails while its stop writes the snapshots: a problem, not a clean stop")
    func recoveryWhoseStopCannotJournal() async throws {
        /// Takes every record but the snapshots (a disk that fills up at the end).
        final class FailsSnapshots: JournalStore {
            let inner: InMemoryJournalStore
            init(_ inner: InMemoryJournalStore) { self.inner = inner }
            func append(_ batch: [JournalRecord]) async throws(JournalError) {
                if batch.contains(where: { $0.kind == .snapshot }) { throw JournalError(.storage, "disk full") }
                try await inner.append(batch)
            }
            func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents {
                try await inner.load(notices: notices)
            }
            func close() async { await inner.close() }
        }
        let directory = try temporaryDirectory()
        let survivor = try await Self.journalKilledWhileTrading(exchangeStatePath: directory + "/run.exchange")
        let outcome = try await RecoverySession(journal: Journal(store: FailsSnapshots(survivor)), exchangeStatePath: directory + "/run.exchange")
            .run(logger: .quiet)
        #expect(outcome.problems.contains { $0.hasPrefix("the journal failed while stopping") }, "\(outcome.problems)")
    }

    @Test("a journal that cannot write stops the manager applying anything, with a clear error")
    func journalFailureRefusesInputs() async throws {
        let exchange = exchange()
        let store = InMemoryJournalStore()
        let process = try await Process(exchange: exchange, store: store)
        store.failNextAppend(with: JournalError(.storage, "disk full"))
        // The write that failed may have been kept all the same (a commit whose answer was
        // lost): the refusal says a restart may replay the bracket, so no one opens it again
        // under a new id at once.
        await #expect { try await process.manager.open(self.bracket()) } throws: { error in
            let message = (error as? InputError)?.message ?? ""
            return message.contains("disk full") && message.contains("a restart would then replay it")
        }
        #expect(process.manager.journalFailure?.code == .storage)
        #expect(await process.manager.positions().first?.status != .open)
        #expect(exchange.statistics.requests["submit"] == nil, "nothing was sent for an input that was never journaled")
        // Later inputs are refused too, and recorded; they were never written.
        await #expect { try await process.manager.open(self.bracket("P2")) } throws: { error in
            let message = (error as? InputError)?.message ?? ""
            return message.contains("disk full") && !message.contains("replay")
        }
        // Another symbol's lane, whose first write comes after the failure: refused unwritten.
        var other = bracket("P3")
        other.symbol = "SLV"
        await #expect { try await process.manager.open(other) } throws: { error in
            let message = (error as? InputError)?.message ?? ""
            return message.contains("disk full") && !message.contains("replay")
        }
        #expect(process.manager.recentRejections().contains { $0.error.code == .journalUnavailable })
    }

    @Test("after the journal failed, a flood of reports is refused pass after pass in a loop, not by recursion that grows the stack")
    func floodAfterJournalFailure() async throws {
        let exchange = exchange()
        let store = InMemoryJournalStore()
        // One event per pass: the most passes, each of which used to call the next.
        let process = try await Process(exchange: exchange, store: store, configure: { $0.lanePassLimit = 1 })
        try await process.manager.open(bracket())
        await process.settle()
        let entry = try #require(await process.manager.position("P1")?.orders.first { $0.role == .entry })
        store.failNextAppend(with: JournalError(.storage, "disk full"))
        let count = 200_000
        for index in 0..<count {
            process.manager.receive(.execution(ExecutionReport(executionID: ExecutionID("FLOOD-\(index)"), orderID: entry.id, symbol: Self.symbol,
                                                                side: .buy, lastQuantity: 1, lastPrice: Price("248")!)))
        }
        await process.manager.waitUntilIdle()
        #expect(process.manager.journalFailure?.code == .storage)
        #expect(process.manager.statistics.rejected[.journalUnavailable] == count, "every report refused, none lost track of")
    }

    @Test("an orphaned order (of FillGuard's making, unknown to the journal) that fills is alerted, and keeps the symbol closed to brackets after it ended, until a person releases it")
    func orphanThatFillsIsAlertedAndKeepsBlocking() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        _ = first.kill()
        try await exchange.submit(NewOrderRequest(orderID: "MANUAL-SELL", symbol: Self.symbol, side: .sell, type: .market, quantity: 300,
                                                  timeInForce: .immediateOrCancel))
        let second = try await Process(exchange: exchange, store: InMemoryJournalStore())
        let orphans = try #require(second.report.unknownLiveOrders[Self.symbol])
        // The orphaned target fills: the broker sells 300 FillGuard books nowhere.
        exchange.setPrice(Price("260")!, of: Self.symbol)
        await second.settle()
        #expect(second.manager.statistics.alertsByKind[.fillRefused] == 1, "\(second.manager.statistics.alertsByKind)")
        #expect(second.manager.statistics.rejected[.unknownOrder] == 1)
        // The others are cancelled: every orphan has ended, but one of them traded.
        for orphan in orphans where exchange.order(orphan, of: Self.symbol)?.state == .live {
            try await exchange.cancel(CancelOrderRequest(orderID: orphan, symbol: Self.symbol))
        }
        do {
            try await second.manager.open(bracket("P2"))
            Issue.record("a bracket was opened beside a position an orphan made")
        } catch {
            #expect(error.code == .unknownOrdersLive && error.message.contains("P1-tp5 (filled, 300 filled: the broker's position on GLD moved without FillGuard)"),
                    "\(error.message)")
        }
        #expect(second.manager.releaseUnknownOrders(of: Self.symbol))
        try await second.manager.open(bracket("P2"))
    }

    @Test("an order FillGuard has ended but the broker still works is cancelled on restart (here: a resubmitted id the broker already had)")
    func endedOrdersLiveAtTheBrokerAreCancelled() async throws {
        let exchange = exchange()
        // P1's entry rests (a limit under the market); meanwhile the exchange gets "P1-sl4", the
        // id FillGuard will give P1's stop, at another size (as after a journal that lost the
        // intent of a stop the exchange had taken, and a resize). Once the entry fills,
        // FillGuard's submit of it is refused as a duplicate with other terms, so FillGuard's
        // record has it rejected while it is live.
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        var spec = bracket()
        spec.entryType = .limit(Price("247")!)
        try await first.manager.open(spec)
        await first.settle()
        try await exchange.submit(NewOrderRequest(orderID: "P1-sl4", symbol: Self.symbol, side: .sell, type: .stop(Price("240")!),
                                                  quantity: 299, timeInForce: .goodTillCancel))
        exchange.setPrice(Price("247")!, of: Self.symbol)
        await first.settle()
        let stop = try #require(await first.manager.position("P1")?.orders.first { $0.id == "P1-sl4" })
        #expect(!stop.status.isLive, "FillGuard's record: the stop was refused")
        #expect(exchange.order("P1-sl4", of: Self.symbol)?.state == .live, "the exchange still works it")

        // The broker throttles the first two cancels: reconciliation tries again (5 attempts).
        let second = try await Process(exchange: exchange, store: first.kill(), prepare: { $0.throttleNextCancels(2) })
        let ended = second.report.corrections.filter { $0.kind == .endedOrderLiveAtBroker }
        #expect(ended.map(\.orderID) == ["P1-sl4"], "\(second.report.corrections)")
        #expect(ended.first?.message.contains("cancelled") == true)
        #expect(exchange.order("P1-sl4", of: Self.symbol)?.state == .cancelled)
        await second.settle()
        try await expectProtectedAndExact(second, exchange)
    }

    @Test("orders the exchange took whose intents the journal lost are taken as placed, never submitted twice")
    func lostIntentsAreNotResubmitted() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        first.connection.holdAcknowledgements()
        try await first.manager.open(bracket())
        // Entry, two scale-ins, then the stop and the target after the entry's fill.
        await first.connection.waitForHeldRequests(5)
        await first.journal.flush()
        let survivor = first.kill()
        #expect(survivor.rows.suffix(2).allSatisfy { $0.kind == .intent }, "the newest records: the stop's and the target's intents")
        survivor.dropNewestRecords(2)

        let second = try await Process(exchange: exchange, store: survivor)
        let placed = second.report.corrections.filter { $0.message.contains("not submitted again") }
        #expect(Set(placed.compactMap(\.orderID)) == ["P1-sl4", "P1-tp5"], "\(second.report.corrections)")
        await second.settle()
        try await expectProtectedAndExact(second, exchange)
        #expect(exchange.statistics.requests["submit"] == 5, "no id was submitted twice")
        #expect(!second.report.corrections.contains { $0.kind == .endedOrderLiveAtBroker })
    }

    @Test("an entry the journal has as not yet sent goes out only after the net check: its fill is no position mismatch")
    func heldWorkGoesOutAfterTheNetCheck() async throws {
        // Journals that hold the opens and nothing after them: everything later was lost (the
        // requests went to another exchange, which stays out of this). Several symbols, so that
        // the first lane is reconciled well before the net check.
        let symbols: [Symbol] = [Self.symbol, "HHH", "III", "JJJ", "KKK", "LLL"]
        func exchange() -> SimulatedExchange {
            var configuration = SimulatorConfiguration(seed: 7)
            configuration.partialFillAbove = nil
            configuration.volatilityBasisPoints = 0
            return SimulatedExchange(configuration: configuration, symbols: Dictionary(uniqueKeysWithValues: symbols.map { ($0, Price("248")!) }))
        }
        let elsewhere = try await Process(exchange: exchange(), store: InMemoryJournalStore())
        elsewhere.connection.holdAcknowledgements()
        for (index, symbol) in symbols.enumerated() {
            var spec = bracket(PositionID("P\(index)"))
            spec.symbol = symbol
            try await elsewhere.manager.open(spec)
        }
        await elsewhere.connection.waitForHeldRequests(3 * symbols.count)
        await elsewhere.journal.flush()
        let survivor = elsewhere.kill()
        let firsts = Dictionary(grouping: survivor.rows, by: \.symbol).mapValues { $0.map(\.sequence).min() }
        survivor.removeRecords { $0.sequence != firsts[$0.symbol] ?? nil }
        #expect(survivor.rows.count == symbols.count && survivor.rows.allSatisfy { $0.kind == .input }, "each symbol's open alone")

        // Here each market entry fills the moment it is submitted; its report waits in the
        // stream, which is read only once recover() returns.
        let exchange = exchange()
        let second = try await Process(exchange: exchange, store: survivor)
        #expect(!second.report.corrections.contains { $0.kind == .positionMismatch }, "\(second.report.corrections)")
        #expect(second.connection.requestsBeforeNetCheck == 0, "nothing goes out before the net check")
        await second.settle()
        for symbol in symbols { #expect(exchange.netPosition(of: symbol) == 300) }
        #expect(await second.manager.invariantViolations().isEmpty)
    }

    @Test("a resting order that fills while recovery reconciles is adopted, not reported as a position mismatch")
    func fillDuringReconciliationIsNoMismatch() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        // The first scale-in (a buy limit at 246) fills just as the net positions are read.
        let second = try await Process(exchange: exchange, store: first.kill(), prepare: { connection in
            connection.beforeFirstPositions { exchange.setPrice(Price("246")!, of: Self.symbol) }
        })
        #expect(exchange.netPosition(of: Self.symbol) == 600)
        #expect(!second.report.corrections.contains { $0.kind == .positionMismatch }, "\(second.report.corrections)")
        #expect(second.report.corrections.filter { $0.kind == .adoptedFill }.compactMap(\.orderID) == ["P1-si0-2"], "\(second.report.corrections)")
        await second.settle()
        try await expectProtectedAndExact(second, exchange)
    }

    @Test("a fill no journal record knows leaves a mismatch, reported once, with its fill reported once")
    func lastingMismatchIsReportedOnce() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        let survivor = first.kill()
        // Someone else's market order on the account fills while FillGuard is down.
        try await exchange.submit(NewOrderRequest(orderID: "MANUAL-1", symbol: Self.symbol, side: .buy, type: .market, quantity: 5,
                                                  timeInForce: .immediateOrCancel))
        let second = try await Process(exchange: exchange, store: survivor)
        let kinds = second.report.corrections.map(\.kind)
        #expect(kinds.filter { $0 == .unknownExecution }.count == 1, "\(second.report.corrections)")
        #expect(kinds.filter { $0 == .positionMismatch }.count == 1, "\(second.report.corrections)")
        let mismatch = try #require(second.report.corrections.first { $0.kind == .positionMismatch })
        #expect(mismatch.message.contains("the broker's net is 305, FillGuard's 300"))
    }

    @Test("a fill the broker reports but the journal's state refuses (an overfill) is reported once, with one mismatch")
    func refusedAdoptionIsReportedOnce() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        let entry = try #require(await first.manager.position("P1")?.orders.first { $0.role == .entry })
        let survivor = first.kill()
        let second = try await Process(exchange: exchange, store: survivor, prepare: { connection in
            connection.forge(ExecutionReport(executionID: "FORGED-1", orderID: entry.id, symbol: Self.symbol, side: .buy,
                                             lastQuantity: 5_000, lastPrice: Price("248")!))
        })
        let kinds = second.report.corrections.map(\.kind)
        #expect(kinds.filter { $0 == .adoptedFill }.count == 1, "\(second.report.corrections)")
        #expect(kinds.filter { $0 == .positionMismatch }.count == 1, "\(second.report.corrections)")
        #expect(second.manager.statistics.rejected[.overfill] == 1, "refused once, not again")
    }

    @Test("a stop whose submits all timed out (each taking effect) is cancelled to settle; after a restart one stop protects")
    func exhaustedTimeoutsAcrossARestart() async throws {
        let exchange = exchange()
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        first.connection.timeOutSubmits(containing: "-sl", count: 5)
        try await first.manager.open(bracket())
        await first.settle()
        #expect(exchange.order("P1-sl4", of: Self.symbol)?.state == .cancelled, "the stop the exchange took is cancelled, not forgotten")
        #expect(exchange.liveOrders(of: Self.symbol).filter { if case .stop = $0.type { return true } else { return false } }.isEmpty)

        let second = try await Process(exchange: exchange, store: first.kill())
        await second.settle()
        try await expectProtectedAndExact(second, exchange)
    }

    /// P1 opened; the stop's submit takes effect at the exchange but is answered "timed out",
    /// its retry a minute away; then the process is killed. Returns what the journal kept.
    private func stopSubmitTimedOutThenKilled(on exchange: SimulatedExchange) async throws -> InMemoryJournalStore {
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore()) { configuration in
            configuration.retry = RetryPolicy(maxAttempts: 5, baseDelay: .seconds(60), maxDelay: .seconds(60))
        }
        first.connection.timeOutSubmits(containing: "-sl", count: 1)
        try await first.manager.open(bracket())
        await first.connection.waitForTimeOuts(1)
        await first.journal.flush()
        return first.kill()
    }

    @Test("a stop whose submit timed out (taking effect) just before a crash is the stop after the restart, not a second one")
    func timedOutSubmitAcrossARestart() async throws {
        let exchange = exchange()
        let second = try await Process(exchange: exchange, store: try await stopSubmitTimedOutThenKilled(on: exchange))
        await second.settle()
        try await expectProtectedAndExact(second, exchange)
        let stops = exchange.liveOrders(of: Self.symbol).filter { if case .stop = $0.type { return true } else { return false } }
        #expect(stops.map(\.id) == ["P1-sl4"], "the order the exchange already had")
    }

    @Test("a stop whose submit timed out (taking effect) and that the broker ended while FillGuard was down gets a new stop; it was taken as working")
    func timedOutSubmitEndedWhileDown() async throws {
        let exchange = exchange()
        let survivor = try await stopSubmitTimedOutThenKilled(on: exchange)
        // While FillGuard is down the exchange cancels the stop it took.
        try await exchange.cancel(CancelOrderRequest(orderID: "P1-sl4", symbol: Self.symbol))

        let second = try await Process(exchange: exchange, store: survivor)
        await second.settle()
        #expect(second.report.corrections.contains { $0.kind == .orderEndedAtBroker && $0.orderID == "P1-sl4" }, "\(second.report.corrections)")
        try await expectProtectedAndExact(second, exchange)
        let stops = exchange.liveOrders(of: Self.symbol).filter { if case .stop = $0.type { return true } else { return false } }
        #expect(stops.count == 1 && stops.first?.id != "P1-sl4", "\(stops.map(\.id))")
    }

    @Test("unknown live orders at the broker are reported, or cancelled when configured")
    func unknownOrders() async throws {
        let exchange = exchange()
        try await exchange.submit(NewOrderRequest(orderID: "MANUAL-1", symbol: Self.symbol, side: .sell, type: .limit(Price("300")!),
                                                  quantity: 5, timeInForce: .goodTillCancel))
        let leave = try await Process(exchange: exchange, store: InMemoryJournalStore())
        #expect(leave.report.corrections.map(\.kind) == [.unknownBrokerOrder])
        #expect(exchange.order("MANUAL-1", of: Self.symbol)?.state == .live)
        let cancel = try await Process(exchange: exchange, store: leave.kill(), unknownOrders: .cancel)
        #expect(cancel.report.corrections.map(\.kind) == [.unknownBrokerOrder])
        #expect(exchange.order("MANUAL-1", of: Self.symbol)?.state == .cancelled)
    }

    @Test("no bracket opens beside live orders of FillGuard's making that the journal lost (left working): until the broker ends them, or a person releases the symbol; other programs' orders do not stop one",
          arguments: [UnknownOrderPolicy.leave, .adopt])
    func noBracketBesideOrphanedOrders(_ policy: UnknownOrderPolicy) async throws {
        var market = SimulatorConfiguration(seed: 7)
        market.partialFillAbove = nil
        market.volatilityBasisPoints = 0
        let exchange = SimulatedExchange(configuration: market, symbols: [Self.symbol: Price("248")!, "SLV": Price("30")!])
        let first = try await Process(exchange: exchange, store: InMemoryJournalStore())
        try await first.manager.open(bracket())
        await first.settle()
        let orphans = exchange.liveOrders(of: Self.symbol).map(\.id).sorted { $0.rawValue < $1.rawValue }
        #expect(orphans.count == 4, "P1's stop, target and two scale-ins")
        _ = first.kill()
        // While FillGuard is down someone sells the 300 by hand: the broker is flat, P1's stop,
        // target and scale-ins still work. The journal is lost (a fresh one), so no record knows them.
        try await exchange.submit(NewOrderRequest(orderID: "MANUAL-SELL", symbol: Self.symbol, side: .sell, type: .market, quantity: 300,
                                                  timeInForce: .immediateOrCancel))
        try await exchange.submit(NewOrderRequest(orderID: "MANUAL-2", symbol: "SLV", side: .buy, type: .limit(Price("20")!),
                                                  quantity: 5, timeInForce: .goodTillCancel))
        let second = try await Process(exchange: exchange, store: InMemoryJournalStore(), unknownOrders: policy)
        #expect(second.report.heldSymbols.isEmpty, "the nets agree: nothing held")
        #expect(second.report.unknownLiveOrders == [Self.symbol: orphans], "\(second.report.unknownLiveOrders)")
        let unknown = second.report.corrections.filter { $0.kind == .unknownBrokerOrder }
        #expect(unknown.count == 5)
        #expect(unknown.filter { $0.message.contains("no bracket opens on GLD") }.map(\.orderID) == orphans)
        #expect(unknown.first { $0.orderID == "MANUAL-2" }?.message.contains("no bracket opens") == false)

        // A bracket beside them is refused, naming them; nothing is sent.
        let sent = exchange.statistics.requests["submit", default: 0]
        do {
            try await second.manager.open(bracket("P2"))
            Issue.record("a bracket was opened beside the orphaned stop and target")
        } catch {
            #expect(error.code == .unknownOrdersLive, "\(error)")
            #expect(orphans.allSatisfy { error.message.contains($0.rawValue) }, "\(error.message)")
        }
        #expect(await second.manager.position("P2") == nil)
        #expect(exchange.statistics.requests["submit", default: 0] == sent)
        #expect(second.manager.statistics.rejected[.unknownOrdersLive] == 1)
        // Another program's order, on a symbol FillGuard never traded, stops nothing.
        try await second.manager.open(BracketSpec(positionID: "P3", symbol: "SLV", side: .buy, quantity: 10, entryType: .limit(Price("25")!),
                                                  stopLoss: Price("20"), takeProfit: Price("40")))

        // Three of them end at the broker: still refused for the last, named alone.
        for orphan in orphans.dropLast() { try await exchange.cancel(CancelOrderRequest(orderID: orphan, symbol: Self.symbol)) }
        do {
            try await second.manager.open(bracket("P2"))
            Issue.record("a bracket was opened beside an orphaned order")
        } catch {
            #expect(error.code == .unknownOrdersLive && error.message.contains("(\(orphans[3]))"), "\(error.message)")
        }
        #expect(second.manager.statistics.rejected[.unknownOrdersLive] == 2)
        // All ended: the broker is asked again, and the bracket opens.
        try await exchange.cancel(CancelOrderRequest(orderID: orphans[3], symbol: Self.symbol))
        try await second.manager.open(bracket("P2"))
        await second.settle()
        #expect(await second.manager.position("P2")?.status == .open)
        #expect(await second.manager.invariantViolations().isEmpty)

        // The same, released by a person instead: the bracket opens beside the orphans.
        let third = try await Process(exchange: exchange, store: InMemoryJournalStore(), unknownOrders: policy)
        let symbols = Set(third.report.unknownLiveOrders.keys)
        #expect(symbols == [Self.symbol, "SLV"], "P2's and P3's orders, unknown to this journal: \(third.report.unknownLiveOrders)")
        #expect(third.manager.releaseUnknownOrders(of: Self.symbol))
        #expect(!third.manager.releaseUnknownOrders(of: Self.symbol), "released already")
        // The orphans' position ids stay taken: a bracket under one would reuse ids the broker holds.
        await #expect(throws: InputError.self) { try await third.manager.open(self.bracket("P2")) }
        #expect(third.manager.statistics.rejected[.positionExists] == 1)
        try await third.manager.open(bracket("P4"))
        #expect(await third.manager.position("P4") != nil)
    }
}
