import FillGuard
import FillGuardCore
import Logging
import Testing

@Suite("Broker answer timeout", .timeLimit(.minutes(5)))
struct BrokerAnswerTimeoutTests {
    private func configuration() -> FillGuardConfiguration {
        var configuration = FillGuardConfiguration(retry: RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5)))
        // Long enough that an answer the machine is slow to deliver (a loaded CI machine) is not
        // taken for another silent call: the counts below are exact.
        configuration.brokerAnswerTimeout = .milliseconds(500)
        return configuration
    }

    @Test("a positive answer timeout is at least 10 ms (checked every half timeout, a tiny one was a busy loop); nil and zero still wait for ever")
    func answerTimeoutHasAFloor() {
        var configuration = FillGuardConfiguration()
        configuration.brokerAnswerTimeout = .nanoseconds(1)
        #expect(configuration.brokerAnswerTimeout == FillGuardConfiguration.shortestBrokerAnswerTimeout)
        configuration.brokerAnswerTimeout = .zero
        #expect(configuration.brokerAnswerTimeout == .zero)
        configuration.brokerAnswerTimeout = nil
        #expect(configuration.brokerAnswerTimeout == nil)
        configuration.brokerAnswerTimeout = .seconds(3)
        #expect(configuration.brokerAnswerTimeout == .seconds(3))
    }

    @Test("an async broker call that does not return is counted as timed out and sent again; its late answer is ignored")
    func hangingAsyncCall() async throws {
        let broker = TestBroker()
        let log = LevelRecorder()
        let manager = FillManager(broker: broker, configuration: configuration(), logger: log.logger())
        broker.hold()
        try await manager.open(.long("P1", "AAA"))
        // The entry's and the scale-in's submits hang; past the timeout both are sent again.
        await broker.waitForHeld(4)
        #expect(broker.count(.submit) == 4)
        broker.releaseAll()
        #expect(await waitUntilIdle(manager))
        let position = try #require(await manager.position("P1"))
        #expect(position.liveOrder(.entry)?.status == .working)
        #expect(manager.statistics.retries >= 2)
        #expect(log.recorded.contains(.warning), "the late answers are noted")
        #expect(!log.recorded.contains(.critical))
        #expect(await manager.invariantViolations().isEmpty)
    }

    @Test("a callback broker that never calls back is counted as timed out; answering later changes nothing", arguments: CallbackTestBroker.Answer.allCases)
    func silentCallbackBroker(answer: CallbackTestBroker.Answer) async throws {
        let broker = CallbackTestBroker(answer: answer, unanswered: 2)
        let manager = FillManager(broker: broker, configuration: configuration(), logger: .quiet)
        try await manager.open(.long("P1", "AAA"))
        // Idle only once the two silent calls expired and their resends were answered.
        #expect(await waitUntilIdle(manager))
        #expect(broker.count(.submit) == 4)
        let position = try #require(await manager.position("P1"))
        #expect(position.liveOrder(.entry)?.status == .working && position.liveOrder(.scaleIn(0))?.status == .working)
        broker.answerWithheld()
        #expect(await waitUntilIdle(manager))
        #expect(broker.count(.submit) == 4, "the late answers send nothing")
        #expect(manager.statistics.retries == 2)
    }
}
