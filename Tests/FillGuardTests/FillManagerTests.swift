import Dispatch
import FillGuard
import FillGuardCore
import Metrics
import MetricsTestKit
import Synchronization
import Logging
import Testing

@Suite("FillManager runtime", .timeLimit(.minutes(5)))
struct FillManagerTests {
    @Test("same-symbol fills are handled one at a time, in arrival order, even while the broker is slow")
    func sameSymbolFillsAreSerializedWithSlowBroker() async throws {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet)
        var fills = FillMaker()
        try await manager.open(BracketSpec(positionID: "P1", symbol: "AAPL", side: .buy, quantity: 1_000, stopLoss: Price("90"), takeProfit: Price("120")))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        let changes = manager.positionChanges()

        broker.hold() // every broker request now waits until released: a very slow broker
        for _ in 0..<200 { manager.receive(fills.fill(entry, 1, at: "100")) }

        // All 200 fills are applied although no broker operation has completed.
        var seen: [Quantity] = []
        for await change in changes {
            seen.append(change.netQuantity)
            if seen.count == 200 { break }
        }
        #expect(seen == (1...200).map { Quantity($0) }, "each fill sees exactly the state of the previous ones")
        #expect(await manager.position("P1")?.netQuantity == 200)
        // The stop's submit is in flight (held); later fills were coalesced into desired state.
        #expect(broker.count(.submit) == 3, "the entry, then one stop and one target submit; no per-fill stale operations")
        broker.releaseAll()
        await manager.waitUntilIdle()
        let position = try #require(await manager.position("P1"))
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 200)
        #expect(position.liveOrder(.takeProfit)?.openQuantity == 200)
        #expect(broker.count(.modify) == 2, "after the slow submits, one modify each straight to the latest size")
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("different symbols are processed in parallel")
    func differentSymbolsOverlapInTime() async throws {
        try await expectTwoSymbolsRunAtOnce()
    }

    @Test("fills from several threads at once across symbols all land exactly, whether idle runners poll or not",
          arguments: [Duration.zero, .microseconds(100), .milliseconds(20)])
    func concurrentProducersLandExactly(idleSpin: Duration) async throws {
        let broker = TestBroker()
        var configuration = FillGuardConfiguration(retry: .immediate)
        configuration.idleSpin = idleSpin
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        let symbols = (0..<12).map { Symbol("S\($0)") }
        var scaleIns: [OrderSnapshot] = []
        var fills = FillMaker()
        for (index, symbol) in symbols.enumerated() {
            let position = try await manager.openLongAndFillEntry(PositionID("P\(index)"), symbol, fills: &fills)
            scaleIns.append(try #require(position.liveOrder(.scaleIn(0))))
        }
        // Four producers, each sending one share to every symbol's scale-in, 20 rounds, with
        // pauses of random length between bursts (runners go idle, poll, end and restart).
        let producers = 4
        let rounds = 20
        await sendConcurrently(to: manager, orders: scaleIns, producers: producers, rounds: rounds, prefix: "C")
        await manager.waitUntilIdle()
        try await expectCovered(manager, positions: symbols.count, net: Quantity(100 + producers * rounds))
        #expect(manager.statistics.fills == symbols.count * (1 + producers * rounds))
    }

    @Test("a callback broker gets every operation through send, answered at once or later: retries, coalescing and sizes as with tasks",
          arguments: CallbackTestBroker.Answer.allCases)
    func callbackBrokerPath(answer: CallbackTestBroker.Answer) async throws {
        let broker = CallbackTestBroker(answer: answer)
        broker.fail(2, .submit, with: BrokerError(.transient, "timeout"))
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5))
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: policy), logger: .quiet)
        var fills = FillMaker()
        let opened = try await manager.openLongAndFillEntry("P1", "CBK", fills: &fills)
        #expect(manager.statistics.retries == 2, "the two failed submits were retried")
        let scaleIn = try #require(opened.liveOrder(.scaleIn(0)))
        for _ in 0..<40 { manager.receive(fills.fill(scaleIn, 1, at: "98")) }
        await manager.waitUntilIdle()
        let position = try #require(await manager.position("P1"))
        #expect(position.netQuantity == 140)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 140)
        #expect(position.liveOrder(.takeProfit)?.openQuantity == 140)
        #expect(broker.count(.modify) <= 80, "at most one modify per protective order per fill")
        #expect(broker.asyncCalls == 0, "no operation went through a task")
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("a callback broker that answers twice: the repeat is ignored, so no retry, no lost work count, and waitUntilIdle returns",
          arguments: CallbackTestBroker.Answer.allCases)
    func callbackBrokerAnsweringTwice(answer: CallbackTestBroker.Answer) async throws {
        let broker = CallbackTestBroker(answer: answer, repeatAnswer: .failure(BrokerError(.transient, "echo")))
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet)
        var fills = FillMaker()
        try await manager.open(.long("P1", "TWICE"))
        try #require(await waitUntilIdle(manager), "the repeated answers left work counted as outstanding")
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        manager.receive(fills.fill(entry, entry.openQuantity, at: "100"))
        try #require(await waitUntilIdle(manager))
        let scaleIn = try #require(await manager.position("P1")?.liveOrder(.scaleIn(0)))
        for _ in 0..<10 { manager.receive(fills.fill(scaleIn, 3, at: "98")) }
        try #require(await waitUntilIdle(manager))
        let position = try #require(await manager.position("P1"))
        #expect(position.netQuantity == 130)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 130)
        #expect(position.liveOrder(.takeProfit)?.openQuantity == 130)
        #expect(manager.statistics.retries == 0, "the repeated failures were not taken as answers")
        #expect(await manager.invariantViolations().isEmpty)
        let sent = broker.count(.modify)
        manager.receive(fills.fill(scaleIn, 1, at: "98"))
        try #require(await waitUntilIdle(manager))
        #expect(broker.count(.modify) == sent + 2, "the work count stayed balanced: the next fill's resizes went out and were waited for")
        #expect(await manager.position("P1")?.liveOrder(.stopLoss)?.openQuantity == 131)
    }

    @Test("a symbol's queue runs FIFO: commands and fills apply in the order they arrived")
    func queueRunsFIFO() async throws {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet)
        var fills = FillMaker()
        try await manager.open(BracketSpec(positionID: "P1", symbol: "MSFT", side: .sell, quantity: 300, stopLoss: Price("110"), takeProfit: Price("90")))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        let orders = manager.orderChanges()
        broker.hold()
        let sizes: [Quantity] = [100, 50, 25, 125]
        for size in sizes { manager.receive(fills.fill(entry, size, at: "100")) }
        var filledSeen: [Quantity] = []
        for await order in orders where order.role == .entry {
            filledSeen.append(order.filledQuantity)
            if filledSeen.count == sizes.count { break }
        }
        #expect(filledSeen == [100, 150, 175, 300])
        broker.releaseAll()
        await manager.waitUntilIdle()
        let position = try #require(await manager.position("P1"))
        #expect(position.netQuantity == -300)
        #expect(position.liveOrder(.stopLoss)?.side == .buy)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 300)
    }

    @Test("transient failures are retried with backoff, then succeed; nothing is dropped")
    func transientFailuresAreRetried() async throws {
        let broker = TestBroker()
        broker.fail(2, .submit, with: BrokerError(.transient, "timeout"))
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5))
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: policy), logger: .quiet)
        var fills = FillMaker()
        let position = try await manager.openLongAndFillEntry("P1", "IBM", fills: &fills)
        #expect(manager.statistics.retries == 2)
        #expect(position.netQuantity == 100)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 100)
        #expect(position.liveOrder(.takeProfit)?.openQuantity == 100)
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("a permanently failed protective operation raises an alert, shows in state and metrics")
    func permanentFailureIsAlerted() async throws {
        let metrics = TestMetrics()
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet, metricsFactory: metrics)
        let alerts = manager.alerts()
        var fills = FillMaker()
        try await manager.open(BracketSpec(positionID: "P1", symbol: "XOM", side: .buy, quantity: 100, stopLoss: Price("95"), takeProfit: nil))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        broker.fail(1, .submit, with: BrokerError(.permanent, "stop price outside band"))
        manager.receive(fills.fill(entry, 100, at: "100"))
        await manager.waitUntilIdle()
        var iterator = alerts.makeAsyncIterator()
        let alert = try #require(await iterator.next())
        #expect(alert.kind == .operationFailed)
        #expect(alert.role == .stopLoss)
        #expect(alert.message.contains("stop price outside band"))
        let position = try #require(await manager.position("P1"))
        #expect(position.orders.contains { $0.role == .stopLoss && $0.status == .rejected && $0.failure != nil })
        #expect(manager.statistics.alerts == 1)
        #expect(manager.statistics.alertsByKind == [.operationFailed: 1])
        #expect(try metrics.expectCounter("fillguard_alerts").totalValue == 1)
    }

    @Test("the circuit breaker opens on repeated failures, holds work, probes and closes")
    func breakerHoldsWorkAndRecovers() async throws {
        let broker = TestBroker()
        broker.fail(4, nil, with: BrokerError(.transient, "connection reset"))
        // (The entry, held meanwhile for a few open times, would be refused after 255 of them,
        // 5 s: far beyond what this takes, however slow the machine.)
        let configuration = FillGuardConfiguration(
            retry: RetryPolicy(maxAttempts: 255, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2)),
            circuitBreaker: CircuitBreakerPolicy(failureThreshold: 2, openDuration: .milliseconds(20), probeWait: .milliseconds(1)))
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        var fills = FillMaker()
        let position = try await manager.openLongAndFillEntry("P1", "CVX", fills: &fills)
        #expect(manager.statistics.breakerTrips >= 1)
        #expect(manager.breakerState == .closed)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 100)
        #expect(position.liveOrder(.takeProfit)?.openQuantity == 100)
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("a late success that closes the breaker sends the work it held at once, not at the end of its open time",
          .timeLimit(.minutes(1)))
    func lateSuccessClosingTheBreakerWakesHeldLanes() async throws {
        let broker = CallbackTestBroker(answer: .inline)
        // One transient failure opens it, for an hour: without the wake-up, the held work (and
        // so waitUntilIdle below) would wait that long.
        let configuration = FillGuardConfiguration(
            retry: RetryPolicy(maxAttempts: 1),
            circuitBreaker: CircuitBreakerPolicy(failureThreshold: 1, openDuration: .seconds(3_600)))
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        var fills = FillMaker()
        let held = try await manager.openLongAndFillEntry("C", "CCC", fills: &fills)
        let stop = try #require(held.liveOrder(.stopLoss))
        // B's entry goes out and gets no answer yet; then A's entry and scale-in fail and open the breaker.
        broker.withholdNext(1)
        try await manager.open(.long("B", "BBB"))
        broker.fail(2, .submit, with: BrokerError(.transient, "connection reset"))
        try await manager.open(.long("A", "AAA"))
        _ = await manager.position("A") // read in order after A's failed submit
        #expect(manager.breakerState == .open)
        // C's stop fills in part: its target's shrink is held by the open breaker.
        manager.receive(fills.fill(stop, 40, at: "95"))
        _ = await manager.position("C")
        #expect(broker.count(.modify) == 0, "held")
        // B's answer comes, a success: the broker works again, the breaker closes, C sends now.
        broker.answerWithheld()
        await manager.waitUntilIdle()
        #expect(manager.breakerState == .closed)
        #expect(broker.count(.modify) == 1)
        #expect(await manager.position("C")?.liveOrder(.takeProfit)?.openQuantity == 60)
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("a slow subscriber never blocks the fill path")
    func slowSubscriberDoesNotBlock() async throws {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate, subscriberBuffer: 4), logger: .quiet)
        let neverRead = manager.positionChanges()
        var fills = FillMaker()
        try await manager.open(BracketSpec(positionID: "P1", symbol: "T", side: .buy, quantity: 500, stopLoss: Price("9"), takeProfit: Price("12")))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        for _ in 0..<500 { manager.receive(fills.fill(entry, 1, at: "10")) }
        await manager.waitUntilIdle()
        #expect(await manager.position("P1")?.netQuantity == 500)
        // The subscriber kept only the newest 4 changes.
        var kept: [Quantity] = []
        manager.finishSubscriptions()
        for await change in neverRead { kept.append(change.netQuantity) }
        #expect(kept.count == 4)
        #expect(kept.last == 500)
    }

    @Test("a subscription taken after finishSubscriptions() has already ended (it waited for ever)")
    func subscribingAfterFinishEnds() async throws {
        let manager = FillManager(broker: TestBroker(), logger: .quiet)
        manager.finishSubscriptions()
        var received = 0
        for await _ in manager.positionChanges() { received += 1 }
        for await _ in manager.alerts() { received += 1 }
        #expect(received == 0)
    }

    @Test("a rate-limited broker still gets every operation, paced by the token bucket")
    func rateLimitPacesButDropsNothing() async throws {
        let rate = 200
        let broker = TestBroker(capabilities: BrokerCapabilities(nativeModify: true, requestsPerSecond: rate, burst: 1))
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet)
        var fills = FillMaker()
        let started = ContinuousClock.now
        for index in 0..<5 {
            _ = try await manager.openLongAndFillEntry(PositionID("P\(index)"), Symbol("S\(index)"), fills: &fills)
        }
        await manager.waitUntilIdle()
        let took = ContinuousClock.now - started
        for position in await manager.positions() {
            #expect(position.liveOrder(.stopLoss)?.openQuantity == 100)
        }
        #expect(await manager.invariantViolations().isEmpty)
        // Paced: with a burst of one, the n-th request goes out no sooner than (n - 1) / rate
        // after the first. (A lower bound: a slow machine only makes it longer.)
        let requests = OrderOperation.Kind.allCases.reduce(0) { $0 + broker.count($1) }
        #expect(requests >= 20, "\(requests) requests")
        #expect(took >= .milliseconds((requests - 1) * 1000 / rate), "\(requests) requests in \(took)")
    }

    @Test("bad input is refused with a typed error, recorded, and changes nothing")
    func badInputIsRecorded() async throws {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet)
        var fills = FillMaker()
        let before = try await manager.openLongAndFillEntry("P1", "GLD", fills: &fills)
        let entry = try #require(before.orders.first { $0.role == .entry })
        // Duplicate execution id, overfill, unknown symbol, symbol mismatch.
        manager.receive(.execution(ExecutionReport(executionID: "X1", orderID: entry.id, symbol: "GLD", side: .buy, lastQuantity: 1, lastPrice: Price("1")!)))
        manager.receive(fills.fill(entry, 1, at: "100"))
        manager.receive(.execution(ExecutionReport(executionID: "Z1", orderID: "nope", symbol: "ZZZ", side: .buy, lastQuantity: 1, lastPrice: Price("1")!)))
        await #expect(throws: InputError.self) { try await manager.open(.long("P1", "GLD")) }
        await manager.waitUntilIdle()
        let codes = manager.recentRejections().map(\.error.code)
        #expect(codes.sorted { $0.rawValue < $1.rawValue } == [.duplicateExecution, .overfill, .positionExists, .unknownOrder])
        #expect(await manager.position("P1") == before)
    }

    @Test("a bracket whose symbol or position id has white space at either end, or a position id with a control character, is refused before it is taken")
    func paddedNamesAreRefused() async throws {
        let manager = FillManager(broker: TestBroker(), configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet)
        for (position, symbol) in [("P1", "GLD "), ("P1", " GLD"), ("P1 ", "GLD"), ("P\u{0}1", "GLD")] {
            await #expect(throws: InputError.self) { try await manager.open(.long(PositionID(position), Symbol(symbol))) }
        }
        #expect(manager.recentRejections().map(\.error.code) == Array(repeating: .malformed, count: 4))
        let positions = await manager.positions()
        #expect(manager.symbolCount == 0 && positions.isEmpty, "nothing taken, no lane made")
        try await manager.open(.long("P 1", "BRK B"))
        #expect(await manager.position("P 1")?.symbol == "BRK B")
    }

    @Test("a report the broker adapter refused is recorded as a refused input and changes nothing")
    func adapterRefusalIsRecorded() async throws {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet)
        var fills = FillMaker()
        let before = try await manager.openLongAndFillEntry("P1", "GLD", fills: &fills)
        manager.receive(.refused(InputError(.malformed, "CumQty \"NaN\" is not a number"), context: "FIX execution report X9", symbol: "GLD"))
        // A symbol with no position: recorded all the same, no lane created.
        manager.receive(.refused(InputError(.malformed, "ExecType Z"), context: "FIX execution report X10", symbol: "ZZZ"))
        await manager.waitUntilIdle()
        let refused = manager.recentRejections()
        #expect(refused.map(\.error.code) == [.malformed, .malformed])
        #expect(refused.first?.context == "FIX execution report X9")
        #expect(manager.statistics.rejected[.malformed] == 2)
        #expect(manager.symbolCount == 1)
        #expect(await manager.position("P1") == before)
    }

    @Test("a broker correction (a trade bust) is not applied: recorded as refused and alerted with its position and role")
    func brokerCorrectionIsAlerted() async throws {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet)
        let alerts = manager.alerts()
        var fills = FillMaker()
        let before = try await manager.openLongAndFillEntry("P1", "GLD", fills: &fills)
        let entry = try #require(before.orders.first { $0.role == .entry })
        manager.receive(.correction(entry.id, symbol: "GLD", message: "the broker cancelled fill X1 of order \(entry.id)"))
        // A symbol with no position: recorded and alerted all the same (the id names its
        // position), no lane created.
        manager.receive(.correction("P9-sl4", symbol: "ZZZ", message: "the broker cancelled fill X7 of order P9-sl4"))
        await manager.waitUntilIdle()
        #expect(manager.statistics.rejected[.brokerCorrection] == 2)
        #expect(manager.symbolCount == 1)
        #expect(await manager.position("P1") == before, "nothing applied")
        var iterator = alerts.makeAsyncIterator()
        var raised: [Alert] = []
        for _ in 0..<2 { raised.append(try #require(await iterator.next())) }
        let onPosition = try #require(raised.first { $0.positionID == "P1" })
        #expect(onPosition.kind == .brokerCorrection && onPosition.role == .entry && onPosition.orderID == entry.id)
        #expect(onPosition.message.contains("cancelled fill X1"))
        let elsewhere = try #require(raised.first { $0.positionID == "P9" })
        #expect(elsewhere.kind == .brokerCorrection && elsewhere.symbol == "ZZZ" && elsewhere.role == nil)
        #expect(manager.statistics.alerts == 2)
        #expect(manager.statistics.alertsByKind == [.brokerCorrection: 2])
    }

    @Test("after a permanent failure the runtime re-arms the stop after the cool-down")
    func runtimeRearmsAfterCoolDown() async throws {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate, rearmDelay: .milliseconds(1)), logger: .quiet)
        var fills = FillMaker()
        try await manager.open(BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, stopLoss: Price("55"), takeProfit: nil))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        let orders = manager.orderChanges()
        broker.fail(1, .submit, with: BrokerError(.permanent, "price band"))
        manager.receive(fills.fill(entry, 100, at: "60"))
        var sawRejected = false
        for await order in orders where order.role == .stopLoss {
            if order.status == .rejected { sawRejected = true }
            if order.status == .working, order.openQuantity == 100 { break }
        }
        #expect(sawRejected)
        await manager.waitUntilIdle()
        #expect(broker.count(.submit) == 3, "entry, the rejected stop, the re-armed stop")
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("after recovery, waitUntilIdle() returns only once the operations held for reconciliation reached the broker")
    func idleAfterRecoveryMeansSent() async throws {
        // The window this guards (between the event that releases held operations and the write
        // of their intents) is tiny, so it is tried many times.
        for round in 0..<300 {
            let store = InMemoryJournalStore()
            let first = FillManager(broker: TestBroker(), journal: Journal(store: store), logger: .quiet)
            _ = try await first.recover()
            try await first.open(BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, stopLoss: Price("55"),
                                             takeProfit: Price("70"), scaleIns: [.init(quantity: 100, type: .limit(Price("58")!))]))
            await first.waitUntilIdle()
            // Keep only the open: as if the process died before any of its orders' intents was written.
            let survivor = store.fork()
            let rows = survivor.rows
            let open = try #require(rows.firstIndex { $0.kind == .input })
            survivor.dropNewestRecords(rows.count - open - 1)
            let broker = TestBroker()
            let second = FillManager(broker: broker, journal: Journal(store: survivor), logger: .quiet)
            _ = try await second.recover()
            await second.waitUntilIdle()
            let submits = broker.count(.submit)
            #expect(submits == 2, "round \(round): idle, yet \(submits) of the entry and scale-in submits reached the broker")
            if submits != 2 { break }
        }
    }

    @Test("with a journal, nothing is taken before recover(): a bracket or report is refused and the journal is left as it was; recover() runs once")
    func journalNeedsRecoveryFirst() async throws {
        let store = InMemoryJournalStore()
        let first = FillManager(broker: TestBroker(), journal: Journal(store: store), logger: .quiet)
        _ = try await first.recover()
        try await first.open(.long("P1", "KO"))
        let survivor = store.fork() // what the next process finds, had this one been killed now
        let written = survivor.rows.count
        #expect(written > 0)
        await first.shutdown()

        // The next process forgets recover(): it must not write over what the journal holds.
        let second = FillManager(broker: TestBroker(), journal: Journal(store: survivor), logger: .quiet)
        await #expect(throws: InputError.self) { try await second.open(.long("P2", "PEP")) }
        second.receive(.execution(ExecutionReport(executionID: "X1", orderID: "P1-en1", symbol: "KO", side: .buy,
                                                  lastQuantity: 1, lastPrice: Price("60")!)))
        await second.waitUntilIdle()
        #expect(second.recentRejections().map(\.error.code) == [.journalUnavailable, .journalUnavailable])
        #expect(second.recentRejections().allSatisfy { $0.error.message.contains("call recover() first") })
        #expect(survivor.rows.count == written, "nothing journaled")
        #expect(second.symbolCount == 0)

        // Once recovered, it carries on from the journal; recover() is not run twice.
        let report = try await second.recover()
        #expect(report.positions == 1)
        #expect(await second.position("P1")?.status == .pending)
        try await second.open(.long("P2", "PEP"))
        await #expect(throws: JournalError.self) { _ = try await second.recover() }
        await second.shutdown()
    }

    @Test("recover(beforeReconciling:) runs its work after the journal is rebuilt, and not at all when the journal cannot be read")
    func workBeforeReconcilingNeedsAReadableJournal() async throws {
        /// A store whose journal cannot be read.
        struct Unreadable: JournalStore {
            func append(_ batch: [JournalRecord]) async throws(JournalError) {}
            func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents {
                throw JournalError(.corrupted, "damaged")
            }
            func close() async {}
        }
        let ran = Mutex(0)
        let refused = FillManager(broker: TestBroker(), journal: Journal(store: Unreadable()), logger: .quiet)
        await #expect(throws: JournalError.self) { _ = try await refused.recover(beforeReconciling: { ran.withLock { $0 += 1 } }) }
        #expect(ran.withLock { $0 } == 0, "nothing may act as if the journal were read")
        await refused.shutdown()

        let store = InMemoryJournalStore()
        let first = FillManager(broker: TestBroker(), journal: Journal(store: store), logger: .quiet)
        _ = try await first.recover()
        try await first.open(.long("P1", "KO"))
        let survivor = store.fork()
        await first.shutdown()
        let second = FillManager(broker: TestBroker(), journal: Journal(store: survivor), logger: .quiet)
        let positionsSeen = Mutex(-1)
        let report = try await second.recover(beforeReconciling: {
            ran.withLock { $0 += 1 }
            positionsSeen.withLock { $0 = second.symbolCount }
        })
        #expect(ran.withLock { $0 } == 1 && positionsSeen.withLock { $0 } == 1, "run once, with the journal's state rebuilt")
        #expect(report.positions == 1)
        await second.shutdown()
    }

    @Test("a broker's fill refused as impossible (an overfill) is recorded, changes nothing, and is alerted: the broker may have traded it")
    func refusedFillIsAlerted() async throws {
        let manager = FillManager(broker: TestBroker(), logger: .quiet)
        var fills = FillMaker()
        let position = try await manager.openLongAndFillEntry("P1", "GLD", fills: &fills)
        let stop = try #require(position.liveOrder(.stopLoss))
        manager.receive(fills.fill(stop, stop.openQuantity + stop.openQuantity, at: "95"))
        await manager.waitUntilIdle()
        #expect(manager.recentRejections().map(\.error.code) == [.overfill])
        #expect(manager.statistics.alertsByKind == [.fillRefused: 1])
        #expect(await manager.position("P1")?.netQuantity == position.netQuantity, "nothing applied")
        // A duplicate is no cause for alarm.
        manager.receive(fills.fill(stop, 10, at: "95"))
        await manager.waitUntilIdle()
        let repeated = ExecutionReport(executionID: "X3", orderID: stop.id, symbol: "GLD", side: .sell, lastQuantity: 10, lastPrice: Price("95")!)
        manager.receive(.execution(repeated))
        await manager.waitUntilIdle()
        #expect(manager.recentRejections().map(\.error.code) == [.overfill, .duplicateExecution])
        #expect(manager.statistics.alertsByKind == [.fillRefused: 1])
    }

    @Test("a report naming an order of another symbol's position is refused as symbolMismatch, with or without a position on its own symbol")
    func reportOnTheWrongSymbol() async throws {
        let manager = FillManager(broker: TestBroker(), logger: .quiet)
        var fills = FillMaker()
        let gold = try await manager.openLongAndFillEntry("G1", "GLD", fills: &fills)
        _ = try await manager.openLongAndFillEntry("X1", "XOM", fills: &fills)
        let stop = try #require(gold.liveOrder(.stopLoss))
        for symbol: Symbol in ["AAPL", "XOM"] { // no lane there; a lane that does not hold the order
            manager.receive(.execution(ExecutionReport(executionID: ExecutionID("W-\(symbol)"), orderID: stop.id, symbol: symbol,
                                                       side: .sell, lastQuantity: 10, lastPrice: Price("95")!)))
            manager.receive(.orderStatus(OrderStatusReport(orderID: stop.id, symbol: symbol, outcome: .cancelled)))
        }
        // An id that names no position anywhere stays an unknown order.
        manager.receive(.execution(ExecutionReport(executionID: "W-none", orderID: "Q9-sl1", symbol: "XOM", side: .sell,
                                                   lastQuantity: 10, lastPrice: Price("95")!)))
        await manager.waitUntilIdle()
        let codes = manager.recentRejections().map(\.error.code)
        #expect(codes == [.symbolMismatch, .symbolMismatch, .symbolMismatch, .symbolMismatch, .unknownOrder], "\(manager.recentRejections())")
        #expect(manager.recentRejections().first?.error.message.contains("is of position G1 on GLD") == true)
        #expect(await manager.position("G1") == gold, "nothing applied")
        #expect(manager.symbolCount == 2)
    }

    @Test("a clean shutdown snapshots every symbol with records since its last snapshot: the next start replays no record")
    func cleanShutdownSnapshotsEverySymbol() async throws {
        let store = InMemoryJournalStore()
        let first = FillManager(broker: TestBroker(), journal: Journal(store: store), logger: .quiet)
        _ = try await first.recover()
        var fills = FillMaker()
        for index in 0..<3 { _ = try await first.openLongAndFillEntry(PositionID("P\(index)"), Symbol("S\(index)"), fills: &fills) }
        let before = await first.positions()
        #expect(await first.shutdown())
        let second = FillManager(broker: TestBroker(), journal: Journal(store: store.fork()), logger: .quiet)
        let report = try await second.recover()
        #expect(report.snapshotsLoaded == 3)
        #expect(report.recordsReplayed == 0, "everything is in the snapshots")
        #expect(await second.positions() == before)
        await second.shutdown()
    }

    @Test("records written under earlier rules (an older record format) are not replayed: a clear unsupportedVersion, nothing rebuilt",
          arguments: [UInt8(1), 2, 3])
    func recordsOfEarlierRulesAreNotReplayed(format: UInt8) async throws {
        let store = InMemoryJournalStore()
        let first = FillManager(broker: TestBroker(), journal: Journal(store: store), logger: .quiet)
        _ = try await first.recover()
        try await first.open(.long("P1", "KO"))
        await first.waitUntilIdle()
        let killed = store.fork() // records, no snapshot
        await first.shutdown()
        #expect(!killed.rows.isEmpty)
        // As an earlier FillGuard wrote them: an older format, the same bytes.
        killed.rewriteRecords { record in
            var payload = record.payload
            payload[0] = format
            record = JournalRecord(symbol: record.symbol, sequence: record.sequence, kind: record.kind, payload: payload)
        }
        let second = FillManager(broker: TestBroker(), journal: Journal(store: killed), logger: .quiet)
        do {
            _ = try await second.recover()
            Issue.record("records of earlier rules were replayed")
        } catch {
            #expect(error.code == .unsupportedVersion)
            #expect(error.message.contains("written by an earlier FillGuard"), "\(error.message)")
        }
        #expect(await second.positions().isEmpty)
    }

    @Test("records of format 4 are replayed: format 5 added only the failure of a request never sent, under the same rules")
    func recordsOfFormatFourAreReplayed() async throws {
        #expect(Journal.recordFormat == 5)
        let store = InMemoryJournalStore()
        let first = FillManager(broker: TestBroker(), journal: Journal(store: store), logger: .quiet)
        _ = try await first.recover()
        var fills = FillMaker()
        _ = try await first.openLongAndFillEntry("P1", "KO", fills: &fills)
        let before = await first.positions()
        let killed = store.fork() // records, no snapshot
        await first.shutdown()
        killed.rewriteRecords { record in
            var payload = record.payload
            payload[0] = 4
            record = JournalRecord(symbol: record.symbol, sequence: record.sequence, kind: record.kind, payload: payload)
        }
        let second = FillManager(broker: TestBroker(), journal: Journal(store: killed), logger: .quiet)
        let report = try await second.recover()
        #expect(report.recordsReplayed > 0)
        #expect(await second.positions() == before)
        await second.shutdown()
    }

    @Test("a refused bracket leaves nothing behind: no lane for its symbol")
    func refusedBracketLeavesNoLane() async throws {
        let manager = FillManager(broker: TestBroker(), logger: .quiet)
        for index in 0..<5 {
            await #expect(throws: InputError.self) {
                try await manager.open(BracketSpec(positionID: PositionID("P\(index)"), symbol: Symbol("S\(index)"), side: .buy, quantity: 100,
                                                   stopLoss: Price("110"), takeProfit: Price("90")))
            }
        }
        #expect(manager.symbolCount == 0)
        #expect(manager.statistics.rejected[.invalidBracket] == 5)
        // The ids were not taken either.
        try await manager.open(.long("P0", "S0"))
        #expect(manager.symbolCount == 1)
    }

    /// Brackets whose own prices put a protective order on the wrong side, or whose time in
    /// force would end their protection at once.
    static let selfDefeatingBrackets: [(String, BracketSpec)] = [
        ("long, stop above the limit entry", BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, entryType: .limit(Price("246")!),
                                                          stopLoss: Price("247"), takeProfit: Price("250"))),
        ("long, stop at the limit entry", BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, entryType: .limit(Price("246")!),
                                                       stopLoss: Price("246"), takeProfit: Price("250"))),
        ("long, take-profit below the limit entry, no stop", BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100,
                                                                         entryType: .limit(Price("246")!), takeProfit: Price("240"))),
        ("long, take-profit inside a stop-limit entry", BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100,
                                                                    entryType: .stopLimit(stop: Price("250")!, limit: Price("252")!),
                                                                    stopLoss: Price("240"), takeProfit: Price("251"))),
        ("long, stop above a scale-in", BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, stopLoss: Price("244"),
                                                     takeProfit: Price("260"), scaleIns: [.init(quantity: 100, type: .limit(Price("243")!))])),
        ("short, stop below the stop entry", BracketSpec(positionID: "P1", symbol: "KO", side: .sell, quantity: 100, entryType: .stop(Price("246")!),
                                                          stopLoss: Price("245"))),
        ("short, take-profit above the limit entry", BracketSpec(positionID: "P1", symbol: "KO", side: .sell, quantity: 100,
                                                                  entryType: .limit(Price("246")!), stopLoss: Price("260"), takeProfit: Price("247"))),
        ("long, take-profit below a scale-in limit (market entry)", BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, stopLoss: Price("90"),
                                                                                 takeProfit: Price("94"), scaleIns: [.init(quantity: 100, type: .limit(Price("95")!))])),
        ("short, take-profit above a scale-in limit (market entry)", BracketSpec(positionID: "P1", symbol: "KO", side: .sell, quantity: 100, stopLoss: Price("110"),
                                                                                  takeProfit: Price("106"), scaleIns: [.init(quantity: 100, type: .limit(Price("105")!))])),
        ("immediate-or-cancel with a stop", BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, stopLoss: Price("240"),
                                                        timeInForce: .immediateOrCancel)),
        ("immediate-or-cancel with a scale-in", BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100,
                                                            scaleIns: [.init(quantity: 100, type: .limit(Price("243")!))], timeInForce: .immediateOrCancel)),
    ]

    @Test("a bracket whose protective order would trigger or fill as soon as it opens, or expire at once (IOC), is refused at open",
          arguments: selfDefeatingBrackets.indices)
    func selfDefeatingBracketIsRefused(_ index: Int) async throws {
        let (name, spec) = Self.selfDefeatingBrackets[index]
        let broker = TestBroker()
        let manager = FillManager(broker: broker, logger: .quiet)
        await #expect(throws: InputError.self, "\(name)") { try await manager.open(spec) }
        #expect(manager.statistics.rejected[.invalidBracket] == 1, "\(name)")
        #expect(manager.symbolCount == 0)
        #expect(await manager.positions().isEmpty)
        #expect(broker.requests.isEmpty)
    }

    @Test("brackets with their protective orders on the right side of every price are taken, both sides, and an IOC entry alone")
    func wellSidedBracketsAreTaken() async throws {
        let manager = FillManager(broker: TestBroker(), logger: .quiet)
        try await manager.open(BracketSpec(positionID: "L", symbol: "KO", side: .buy, quantity: 100, entryType: .stopLimit(stop: Price("250")!, limit: Price("252")!),
                                           stopLoss: Price("240"), takeProfit: Price("252.01"),
                                           scaleIns: [.init(quantity: 100, type: .limit(Price("245")!))]))
        try await manager.open(BracketSpec(positionID: "S", symbol: "PEP", side: .sell, quantity: 100, entryType: .limit(Price("246")!),
                                           stopLoss: Price("250"), takeProfit: Price("240"),
                                           scaleIns: [.init(quantity: 100, type: .limit(Price("249.99")!))]))
        try await manager.open(BracketSpec(positionID: "I", symbol: "XOM", side: .buy, quantity: 100, entryType: .limit(Price("100")!),
                                           timeInForce: .immediateOrCancel))
        // A pyramid: a buy stop above the take-profit is a plan, not a mistake.
        try await manager.open(BracketSpec(positionID: "Y", symbol: "CVX", side: .buy, quantity: 100, stopLoss: Price("90"), takeProfit: Price("100"),
                                           scaleIns: [.init(quantity: 100, type: .stop(Price("105")!))]))
        await manager.waitUntilIdle()
        #expect(await manager.positions().count == 4)
        #expect(manager.statistics.rejected.isEmpty)
    }

    /// A long of 100 KO whose stop-loss the broker refused for good, with no cool-down to re-arm
    /// it: the position waits for `rearmNow()` (or the next fill).
    private func stopRefusedForGood() async throws -> (TestBroker, FillManager) {
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: FillGuardConfiguration(retry: .immediate, rearmDelay: nil), logger: .quiet)
        var fills = FillMaker()
        try await manager.open(BracketSpec(positionID: "P1", symbol: "KO", side: .buy, quantity: 100, stopLoss: Price("55"), takeProfit: nil))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        broker.fail(1, .submit, with: BrokerError(.permanent, "price band"))
        manager.receive(fills.fill(entry, 100, at: "60"))
        await manager.waitUntilIdle()
        #expect(await manager.position("P1")?.liveOrder(.stopLoss) == nil, "rejected, waiting for its re-arm")
        return (broker, manager)
    }

    @Test("after shutdown rearmNow re-arms nothing and says so (0), though a position waits for its re-arm")
    func rearmNowAfterShutdown() async throws {
        let (broker, manager) = try await stopRefusedForGood()
        await manager.shutdown()
        let requests = broker.requests.count
        #expect(await manager.rearmNow() == 0)
        await manager.waitUntilIdle()
        #expect(broker.requests.count == requests)
    }

    @Test("rearmNow re-arms at once what waits for a cool-down (none configured here)")
    func rearmNowWithoutCoolDown() async throws {
        let (_, manager) = try await stopRefusedForGood()
        #expect(await manager.rearmNow() == 1)
        await manager.waitUntilIdle()
        #expect(await manager.position("P1")?.liveOrder(.stopLoss)?.openQuantity == 100)
        #expect(await manager.rearmNow() == 0, "nothing left waiting")
        #expect(await manager.invariantViolations().isEmpty)
    }
}

extension Logger {
    /// A logger for tests that expect warnings: only critical messages are printed.
    static var quiet: Logger {
        var logger = Logger(label: "fillguard.test")
        logger.logLevel = .critical
        return logger
    }
}
