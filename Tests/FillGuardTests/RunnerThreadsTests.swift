import Dispatch
@testable import FillGuard
import FillGuardCore
import Foundation
import Synchronization
import Testing

/// Lanes run on dedicated threads (`FillGuardConfiguration.runnerThreads`): the same rules as on
/// Swift's thread pool, lanes in parallel across threads, and a clean hand-back after shutdown.
@Suite("Runner threads", .timeLimit(.minutes(5)))
struct RunnerThreadsTests {
    @Test("fills from several producers at once land exactly on dedicated threads, polling or sleeping when idle",
          arguments: [(1, Duration.zero), (2, .zero), (1, .microseconds(100)), (2, .microseconds(100))])
    func producersLandExactly(threads count: Int, spin: Duration) async throws {
        let threads = RunnerThreads(count: count, spin: spin, name: "test-runner")
        defer { threads.shutdown() }
        var configuration = FillGuardConfiguration(retry: .immediate)
        configuration.runnerThreads = threads
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        var fills = FillMaker()
        let scaleIns = try await manager.openLongPositions( count: 8, fills: &fills)
        let producers = 4
        let rounds = 20
        await sendConcurrently(to: manager, orders: scaleIns, producers: producers, rounds: rounds, prefix: "R")
        await manager.waitUntilIdle()
        try await expectCovered(manager, positions: scaleIns.count, net: Quantity(100 + producers * rounds))
        #expect(manager.statistics.fills == scaleIns.count * (1 + producers * rounds))
        #expect(threads.passesRun > 0, "the lanes ran on the dedicated threads")
    }

    @Test("an idle runner's poll ends as soon as it is told to stop (a shutdown), not when its spin is up")
    func pollEndsWhenStopped() async {
        final class Flags: Sendable {
            let ready = Atomic<Int>(0)
            let stop = Atomic<Bool>(false)
        }
        let flags = Flags()
        let ended = await withCheckedContinuation { (continuation: CheckedContinuation<IdlePolling.PollEnd, Never>) in
            // On a thread of its own, as a runner thread polls; nothing is ever made ready.
            Thread.detachNewThread {
                continuation.resume(returning: IdlePolling.waitForWork(flags.ready, atMost: 30_000_000_000, unless: flags.stop))
            }
            flags.stop.store(true, ordering: .relaxed)
        }
        #expect(ended == .stopped, "the poll ran out its 30 s instead of ending when told to stop")
    }

    @Test("a thread with a processor of its own polls without yielding, and fills from several producers still land exactly")
    func ownProcessorLandsExactly() async throws {
        let target = try #require(ProcessorAffinity.allowed().first)
        let threads = RunnerThreads(count: 1, processors: [target], spin: .milliseconds(2), name: "test-own")
        defer { threads.shutdown() }
        threads.waitUntilStarted()
        #expect(threads.threadsPollingWithoutYielding == 1)
        var configuration = FillGuardConfiguration(retry: .immediate)
        configuration.runnerThreads = threads
        let manager = FillManager(broker: TestBroker(), configuration: configuration, logger: .quiet)
        var fills = FillMaker()
        let scaleIns = try await manager.openLongPositions( count: 6, fills: &fills)
        await sendConcurrently(to: manager, orders: scaleIns, producers: 3, rounds: 20, prefix: "O")
        await manager.waitUntilIdle()
        try await expectCovered(manager, positions: scaleIns.count, net: Quantity(100 + 3 * 20))
        #expect(threads.passesRun > 0)
    }

    @Test("a broker that answers on the runner's own thread has its answers handled in the same pass: one pass per fill")
    func inlineAnswersNeedNoSecondPass() async throws {
        let threads = RunnerThreads(count: 1, spin: .zero, name: "test-inline")
        defer { threads.shutdown() }
        var configuration = FillGuardConfiguration(retry: .immediate)
        configuration.runnerThreads = threads
        let broker = CallbackTestBroker(answer: .inline)
        // One refused modify on the way: its retry still goes out and lands.
        broker.fail(1, .modify, with: BrokerError(.transient, "busy"))
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        var fills = FillMaker()
        let scaleIn = try #require(try await manager.openLongAndFillEntry("P1", "INL", fills: &fills).liveOrder(.scaleIn(0)))
        manager.receive(fills.fill(scaleIn, 1, at: "98"))
        await manager.waitUntilIdle()
        let before = threads.passesRun
        for _ in 0..<10 {
            manager.receive(fills.fill(scaleIn, 1, at: "98"))
            await manager.waitUntilIdle()
        }
        #expect(threads.passesRun - before == 10, "each fill, its two modifies and their answers: one pass")
        let position = try #require(await manager.position("P1"))
        #expect(position.netQuantity == 111)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 111)
        #expect(position.liveOrder(.takeProfit)?.openQuantity == 111)
        #expect(manager.statistics.retries == 1)
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("journaled lanes on dedicated threads: fills land exactly, and a restart from the journal rebuilds the same state")
    func journaledLanesOnRunnerThreads() async throws {
        let threads = RunnerThreads(count: 2, spin: .microseconds(20), name: "test-runner")
        defer { threads.shutdown() }
        var configuration = FillGuardConfiguration(retry: .immediate)
        configuration.runnerThreads = threads
        let store = InMemoryJournalStore()
        let manager = FillManager(broker: TestBroker(), journal: Journal(store: store), configuration: configuration, logger: .quiet)
        _ = try await manager.recover()
        var fills = FillMaker()
        let scaleIns = try await manager.openLongPositions( count: 4, fills: &fills)
        await sendConcurrently(to: manager, orders: scaleIns, producers: 3, rounds: 15, prefix: "J")
        await manager.waitUntilIdle()
        let before = await manager.positions()
        #expect(before.count == 4)
        try await expectCovered(manager, positions: 4, net: 145)
        let passes = threads.passesRun
        #expect(passes > 0)
        // A second manager on the same threads rebuilds the same positions from the journal.
        let restarted = FillManager(broker: TestBroker(), journal: Journal(store: store.fork()), configuration: configuration, logger: .quiet)
        _ = try await restarted.recover()
        await restarted.waitUntilIdle()
        let after = await restarted.positions()
        #expect(after.map(\.netQuantity) == before.map(\.netQuantity))
        #expect(after.map(\.id) == before.map(\.id))
    }

    @Test("two dedicated threads run two symbols at the same moment")
    func twoThreadsRunInParallel() async throws {
        let threads = RunnerThreads(count: 2, name: "test-runner")
        defer { threads.shutdown() }
        try await expectTwoSymbolsRunAtOnce { $0.runnerThreads = threads }
    }

    @Test("after shutdown the lanes run on Swift's thread pool: nothing is left unprocessed")
    func shutdownHandsBackToThePool() async throws {
        let threads = RunnerThreads(count: 1, spin: .microseconds(50), name: "test-runner")
        var configuration = FillGuardConfiguration(retry: .immediate)
        configuration.runnerThreads = threads
        let manager = FillManager(broker: TestBroker(), configuration: configuration, logger: .quiet)
        var fills = FillMaker()
        let scaleIns = try await manager.openLongPositions( count: 3, fills: &fills)
        threads.shutdown()
        let passes = threads.passesRun
        #expect(passes > 0)
        for order in scaleIns { manager.receive(fills.fill(order, 5, at: "98")) }
        await manager.waitUntilIdle()
        try await expectCovered(manager, positions: scaleIns.count, net: 105)
        #expect(threads.passesRun == passes, "no pass ran on a stopped thread")
    }

    @Test("a thread can be bound to one processor and reads back only that one")
    func pinningBindsTheThread() async throws {
        let allowed = ProcessorAffinity.allowed()
        #expect(!allowed.isEmpty, "Linux reports the processors this process may use")
        let target = try #require(allowed.last)
        // On a thread of its own, so that no pool thread stays pinned.
        let seen = await withCheckedContinuation { (continuation: CheckedContinuation<(Bool, [Int]), Never>) in
            let thread = Thread {
                let pinned = ProcessorAffinity.pinCurrentThread(to: [target])
                continuation.resume(returning: (pinned, ProcessorAffinity.allowed()))
            }
            thread.start()
        }
        #expect(seen.0)
        #expect(seen.1 == [target])
        #expect(!ProcessorAffinity.pinCurrentThread(to: []), "no processor: nothing to bind to")
    }

    @Test("runner threads report how many of them are bound: all on an allowed processor, none on one the process may not use")
    func runnerThreadsReportBinding() throws {
        let allowed = ProcessorAffinity.allowed()
        let target = try #require(allowed.first)
        let bound = RunnerThreads(count: 2, processors: [target], name: "test-bound")
        bound.waitUntilStarted()
        #expect(bound.threadsBound == 2)
        #expect(bound.threadsPollingWithoutYielding == 0, "two threads on one processor yield to each other")
        bound.shutdown()
        let own = RunnerThreads(count: 1, processors: [target], name: "test-own")
        own.waitUntilStarted()
        #expect(own.threadsBound == 1 && own.threadsPollingWithoutYielding == 1, "a processor of its own: it polls without yielding")
        own.shutdown()
        let outside = (0..<1_024).first { !allowed.contains($0) } ?? 1_023
        // A processor named twice, or one beside another the process may not use, is one
        // processor: two threads on it share it, and yield.
        let twice = RunnerThreads(count: 2, processors: [target, target], name: "test-twice")
        twice.waitUntilStarted()
        #expect(twice.threadsBound == 2 && twice.threadsPollingWithoutYielding == 0, "one processor named twice")
        twice.shutdown()
        let beside = RunnerThreads(count: 2, processors: [target, outside], name: "test-beside")
        beside.waitUntilStarted()
        #expect(beside.threadsBound == 2 && beside.threadsPollingWithoutYielding == 0, "processor \(outside) is not usable: one processor for two threads")
        beside.shutdown()
        let unbound = RunnerThreads(count: 1, processors: [outside], name: "test-unbound")
        unbound.waitUntilStarted()
        #expect(unbound.threadsBound == 0, "processor \(outside) is not one this process may use")
        unbound.shutdown()
        let anywhere = RunnerThreads(count: 1, name: "test-anywhere")
        anywhere.waitUntilStarted()
        #expect(anywhere.threadsBound == 0, "no processors asked for")
        #expect(anywhere.threadsPollingWithoutYielding == 0, "unbound threads share their processors: they yield")
        anywhere.shutdown()
    }
}
