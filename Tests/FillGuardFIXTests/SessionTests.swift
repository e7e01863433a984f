import FillGuardCore
import Foundation
import Testing
@testable import FillGuardFIX

let second: Int64 = 1_000_000_000

/// A message from the counterparty (EX) to us (FG), framed.
func peer(_ msgType: String, _ seq: Int, _ fields: [FIXField] = [], possDup: Bool = false) -> [UInt8] {
    var message = FIXMessage(msgType: msgType, fields: [FIXField(49, "EX"), FIXField(56, "FG"), FIXField(34, String(seq)),
                                                         FIXField(52, "20240101-00:00:00.000")])
    if possDup { message.fields += [FIXField(43, "Y"), FIXField(122, "20240101-00:00:00.000")] }
    message.fields += fields
    return try! FIXCodec.encode(message)
}

/// The messages a list of actions sends, decoded.
func sent(_ actions: [FIXSessionAction]) -> [FIXMessage] {
    actions.compactMap { action in
        if case .send(_, let bytes, _) = action { return try? FIXCodec.decode(bytes) }
        return nil
    }
}

/// The application messages a list of actions delivers.
func delivered(_ actions: [FIXSessionAction]) -> [FIXMessage] {
    actions.compactMap { action in
        if case .deliver(let message) = action { return message }
        return nil
    }
}

func closeReason(_ actions: [FIXSessionAction]) -> FIXSessionCloseReason? {
    for action in actions { if case .close(let reason) = action { return reason } }
    return nil
}

func execReport(_ execID: String) -> [FIXField] {
    [FIXField(37, "B1"), FIXField(17, execID), FIXField(150, "0"), FIXField(39, "0"), FIXField(55, "GLD"), FIXField(54, "1"),
     FIXField(151, "10"), FIXField(14, "0"), FIXField(6, "0")]
}

@Suite("FIX session state machine", .timeLimit(.minutes(5)))
struct SessionTests {
    let configuration = FIXSessionConfiguration(senderCompID: "FG", targetCompID: "EX", heartbeatInterval: 30)

    func loggedOn(reset: Bool = false) -> FIXSessionStateMachine {
        var config = configuration
        config.resetSeqNumOnLogon = reset
        var machine = FIXSessionStateMachine(configuration: config)
        _ = machine.connected(now: 0)
        let actions = machine.received(peer("A", 1, [FIXField(98, "0"), FIXField(108, "30")]), now: 0)
        precondition(actions.contains(.loggedOn))
        return machine
    }

    @Test func logonWithResetSeqNumFlag() throws {
        var config = configuration
        config.resetSeqNumOnLogon = true
        var machine = FIXSessionStateMachine(configuration: config, nextSenderSeqNum: 50, nextTargetSeqNum: 70)
        let logon = try #require(sent(machine.connected(now: 0)).first)
        #expect(logon.msgType == "A")
        #expect(logon[34] == "1")
        #expect(logon[141] == "Y")
        #expect(logon[108] == "30")
        #expect(logon[98] == "0")
        #expect(logon[49] == "FG" && logon[56] == "EX")
        let actions = machine.received(peer("A", 1, [FIXField(98, "0"), FIXField(108, "30"), FIXField(141, "Y")]), now: 0)
        #expect(actions == [.loggedOn])
        #expect(machine.state == .active)
        #expect(machine.nextTargetSeqNum == 2)
        #expect(machine.nextSenderSeqNum == 2)
    }

    @Test func resetOnlyOnTheFirstLogonNotOnReconnections() throws {
        var machine = loggedOn(reset: true)
        _ = machine.received(peer("0", 2), now: 1)
        #expect(!machine.resetsOnNextLogon)
        machine.disconnected()
        let logon = try #require(sent(machine.connected(now: 2)).first)
        #expect(logon[141] == nil)
        #expect(logon[34] == "2")
        #expect(machine.nextTargetSeqNum == 3)
    }

    @Test func logonWithoutResetKeepsStoredSequenceNumbers() throws {
        var machine = FIXSessionStateMachine(configuration: configuration, nextSenderSeqNum: 50, nextTargetSeqNum: 70)
        let logon = try #require(sent(machine.connected(now: 0)).first)
        #expect(logon[34] == "50")
        #expect(logon[141] == nil)
        #expect(machine.received(peer("A", 70, [FIXField(98, "0"), FIXField(108, "30")]), now: 0) == [.loggedOn])
        #expect(machine.nextTargetSeqNum == 71)
    }

    @Test("a Logon answer that resets sequence numbers this side did not ask to reset is refused with a Logout (it kept its own sender number and took theirs as 1: the counterparty would then ask for every old message, orders included)")
    func unaskedResetIsRefused() throws {
        var machine = FIXSessionStateMachine(configuration: configuration, nextSenderSeqNum: 50, nextTargetSeqNum: 70)
        _ = machine.connected(now: 0)
        let actions = machine.received(peer("A", 1, [FIXField(98, "0"), FIXField(108, "30"), FIXField(141, "Y")]), now: 0)
        #expect(!actions.contains(.loggedOn))
        #expect(machine.state == .disconnected)
        let logout = try #require(sent(actions).first)
        #expect(logout.msgType == "5" && (logout[58] ?? "").contains("ResetOnLogon"))
        guard case .protocolViolation(let reason)? = closeReason(actions) else { Issue.record("not closed: \(actions)"); return }
        #expect(reason.contains("did not ask"))
        // The numbers stay as they were for the next Logon.
        #expect(machine.nextTargetSeqNum == 70)
        // A fresh session (this side's Logon was number 1): both sides are at the start, so a
        // counterparty that always answers with the flag is in step.
        var fresh = FIXSessionStateMachine(configuration: configuration)
        _ = fresh.connected(now: 0)
        #expect(fresh.received(peer("A", 1, [FIXField(98, "0"), FIXField(108, "30"), FIXField(141, "Y")]), now: 0) == [.loggedOn])
        #expect(fresh.nextTargetSeqNum == 2 && fresh.nextSenderSeqNum == 2)
    }

    @Test func logonRejectedByLogout() {
        var machine = FIXSessionStateMachine(configuration: configuration)
        _ = machine.connected(now: 0)
        let actions = machine.received(peer("5", 1, [FIXField(58, "unknown CompID")]), now: 0)
        #expect(closeReason(actions) == .logonRejected("unknown CompID"))
        #expect(machine.state == .disconnected)
    }

    @Test func logonTimesOut() {
        var machine = FIXSessionStateMachine(configuration: configuration)
        _ = machine.connected(now: 0)
        #expect(machine.tick(now: 9 * second).isEmpty)
        #expect(closeReason(machine.tick(now: 10 * second)) == .logonTimeout)
    }

    @Test func firstMessageMustBeLogon() {
        var machine = FIXSessionStateMachine(configuration: configuration)
        _ = machine.connected(now: 0)
        let actions = machine.received(peer("0", 1), now: 0)
        #expect(closeReason(actions) == .protocolViolation("first message is 0, not Logon"))
    }

    @Test func logonWithSequenceTooLowCloses() {
        var machine = FIXSessionStateMachine(configuration: configuration, nextSenderSeqNum: 1, nextTargetSeqNum: 5)
        _ = machine.connected(now: 0)
        let actions = machine.received(peer("A", 3, [FIXField(98, "0"), FIXField(108, "30")]), now: 0)
        #expect(closeReason(actions) == .sequenceTooLow(expected: 5, received: 3))
        // The counterparty is told why, in a Logout sent before the connection closes.
        let logout = sent(actions).first
        #expect(logout?.msgType == "5" && logout?[58] == "MsgSeqNum too low, expecting 5 but received 3")
    }

    @Test func heartbeatsWhenIdleAndAnswersTestRequests() throws {
        var machine = loggedOn()
        #expect(machine.tick(now: 29 * second).isEmpty)
        let beat = sent(machine.tick(now: 30 * second))
        #expect(beat.map(\.msgType) == ["0"])
        let answer = sent(machine.received(peer("1", 2, [FIXField(112, "ping")]), now: 31 * second))
        #expect(answer.map(\.msgType) == ["0"])
        #expect(answer.first?[112] == "ping")
    }

    @Test func silentCounterpartyGetsATestRequestThenIsDropped() throws {
        var machine = loggedOn()
        _ = machine.received(peer("0", 2), now: 10 * second)
        let probe = sent(machine.tick(now: 46 * second))
        let request = try #require(probe.first(where: { $0.msgType == "1" }))
        let id = try #require(request[112])
        // Answered: no disconnect.
        _ = machine.received(peer("0", 3, [FIXField(112, id)]), now: 47 * second)
        #expect(closeReason(machine.tick(now: 80 * second)) == nil)
        // Unanswered: a new probe, then the connection is closed one interval later.
        let second = sent(machine.tick(now: 90 * second))
        #expect(second.contains(where: { $0.msgType == "1" }))
        #expect(closeReason(machine.tick(now: 121 * 1_000_000_000)) == .heartbeatTimeout)
    }

    @Test("any message received after a TestRequest shows the counterparty alive, not only its Heartbeat (which may wait behind a gap)")
    func anyMessageAnswersATestRequest() throws {
        var machine = loggedOn()
        let probe = sent(machine.tick(now: 40 * second))
        #expect(probe.contains { $0.msgType == "1" })
        // The Heartbeat answering it (3) is lost; an execution report (4) comes ahead of the gap.
        _ = machine.received(peer("8", 4, execReport("E4")), now: 41 * second)
        #expect(machine.isResending)
        #expect(closeReason(machine.tick(now: 71 * second)) == nil, "the counterparty is talking: the session stays up")
    }

    @Test func gapIsFilledByResendThenQueuedMessagesAreDelivered() throws {
        var machine = loggedOn()
        // Expecting 2, the counterparty sends 5: a gap of 2...4.
        let first = machine.received(peer("8", 5, execReport("E5")), now: 1)
        let request = try #require(sent(first).first)
        #expect(request.msgType == "2")
        #expect(request[7] == "2")
        #expect(request[16] == "0")
        #expect(delivered(first).isEmpty)
        #expect(machine.isResending)
        // Another message beyond the gap while resending: queued, no second ResendRequest.
        #expect(sent(machine.received(peer("8", 6, execReport("E6")), now: 1)).isEmpty)
        // The resend: 2 again as PossDup, 3 is gap-filled (it was a heartbeat), 4 again.
        #expect(delivered(machine.received(peer("8", 2, execReport("E2"), possDup: true), now: 2)).map { $0[17] } == ["E2"])
        #expect(machine.received(peer("4", 3, [FIXField(123, "Y"), FIXField(36, "4")], possDup: true), now: 2).isEmpty)
        let rest = machine.received(peer("8", 4, execReport("E4"), possDup: true), now: 2)
        #expect(delivered(rest).map { $0[17] } == ["E4", "E5", "E6"])
        #expect(machine.nextTargetSeqNum == 7)
        #expect(!machine.isResending)
    }

    @Test("messages queued behind a gap that the counterparty's GapFill steps over came intact: a fill among them is delivered, never dropped unseen")
    func gapFillOverQueuedMessagesDeliversThem() throws {
        var machine = loggedOn()
        // Expecting 2: 3 (a fill) and 4 (a Heartbeat) come ahead of the gap.
        _ = machine.received(peer("8", 3, execReport("E3")), now: 1)
        _ = machine.received(peer("0", 4), now: 1)
        // The counterparty keeps no messages: one GapFill over all of them, to 6.
        let actions = machine.received(peer("4", 2, [FIXField(123, "Y"), FIXField(36, "6")], possDup: true), now: 2)
        #expect(delivered(actions).map { $0[17] } == ["E3"], "the fill received behind the gap is delivered: \(actions)")
        #expect(machine.nextTargetSeqNum == 6)
        #expect(!machine.isResending)
        // And in Reset mode: a fill queued at 8 (expecting 6) that a SequenceReset to 10 steps over.
        _ = machine.received(peer("8", 8, execReport("E8")), now: 3)
        let reset = machine.received(peer("4", 99, [FIXField(36, "10")]), now: 3)
        #expect(delivered(reset).map { $0[17] } == ["E8"], "\(reset)")
        #expect(machine.nextTargetSeqNum == 10)
        // A possible duplicate without OrigSendingTime is refused once its turn comes, queued or not.
        _ = machine.received(try FIXCodec.encode(FIXMessage(msgType: "8", fields: [
            FIXField(49, "EX"), FIXField(56, "FG"), FIXField(34, "11"), FIXField(43, "Y"), FIXField(52, "20240101-00:00:00.000"),
        ] + execReport("E11"))), now: 4)
        let drained = machine.received(peer("8", 10, execReport("E10")), now: 4)
        #expect(delivered(drained).map { $0[17] } == ["E10"])
        #expect(sent(drained).contains { $0.msgType == "3" && $0[45] == "11" && $0[371] == "122" }, "\(drained)")
        #expect(drained.contains { if case .refusedApplication(_, 11, _) = $0 { true } else { false } })
    }

    @Test("a gap the counterparty never fills (or fills with something refused) is asked for again, then the session is closed; never left waiting")
    func unansweredResendIsRepeatedThenClosed() throws {
        var machine = loggedOn()
        #expect(sent(machine.received(peer("8", 5, execReport("E5")), now: 1)).map(\.msgType) == ["2"])
        // Ten seconds without progress: asked again, from where the gap starts.
        #expect(sent(machine.tick(now: 1 + 9 * second)).filter { $0.msgType == "2" }.isEmpty)
        let again = try #require(sent(machine.tick(now: 1 + 10 * second)).first { $0.msgType == "2" })
        #expect(again[7] == "2")
        // Progress (2 arrives) restarts the wait; the rest of the gap still missing is asked for again later.
        _ = machine.received(peer("8", 2, execReport("E2"), possDup: true), now: 15 * second)
        #expect(sent(machine.tick(now: 20 * second)).filter { $0.msgType == "2" }.isEmpty)
        #expect(sent(machine.tick(now: 21 * second)).filter { $0.msgType == "2" }.isEmpty, "the wait restarted at the progress")
        #expect(try #require(sent(machine.tick(now: 26 * second)).first { $0.msgType == "2" })[7] == "3")
        #expect(try #require(sent(machine.tick(now: 36 * second)).first { $0.msgType == "2" })[7] == "3")
        #expect(try #require(sent(machine.tick(now: 46 * second)).first { $0.msgType == "2" })[7] == "3")
        // Asked four times in all for 3 on: a Logout says why, the connection is closed, and the
        // next Logon asks afresh.
        let end = machine.tick(now: 56 * second)
        guard case .protocolViolation? = closeReason(end) else {
            Issue.record("a resend that never came left the session waiting")
            return
        }
        let logout = try #require(sent(end).first { $0.msgType == "5" })
        #expect(logout[58]?.contains("never came") == true)
    }

    @Test("sequence numbers are FIX ints: no plus sign; one beyond Int64 is out of range (Logout, Reject 373=5), not missing or ignored")
    func sequenceNumbersParseStrictly() throws {
        #expect(FIXMessage.integer("009") == 9)
        #expect(FIXMessage.integer("-5") == -5)
        #expect(FIXMessage.integer("+9") == nil)
        #expect(FIXMessage.integer("-") == nil)
        #expect(FIXMessage.integer("9223372036854775808") == .max)
        #expect(FIXMessage.integer("-99999999999999999999") == .min)

        var machine = loggedOn()
        let reset = machine.received(peer("4", 2, [FIXField(36, "9223372036854775808")]), now: 1)
        let reject = try #require(sent(reset).first)
        #expect(reject.msgType == "3")
        #expect(reject[373] == "5", "out of range, not 'NewSeqNo missing'")
        let plus = try #require(sent(machine.received(peer("4", 2, [FIXField(36, "+30")]), now: 1)).first)
        #expect(plus.msgType == "3")
        #expect(plus[373] == "6", "a NewSeqNo that is there but not an integer is a format error, not missing")
        var other = loggedOn()
        let heartbeat = FIXMessage(msgType: "0", fields: [FIXField(49, "EX"), FIXField(56, "FG"), FIXField(34, "9223372036854775808"),
                                                         FIXField(52, "20240101-00:00:00.000")])
        let beyond = other.received(try FIXCodec.encode(heartbeat), now: 1)
        #expect(sent(beyond).map(\.msgType).contains("5"), "a MsgSeqNum beyond Int64 ends the session")
    }

    @Test("an execution report the session refuses (a required tag missing) is answered with a Reject and handed on as refused, never just dropped")
    func sessionRefusedReportIsHandedOn() throws {
        var machine = loggedOn()
        let incomplete = execReport("E2").filter { $0.tag != 151 }
        let actions = machine.received(peer("8", 2, incomplete), now: 1)
        #expect(sent(actions).map(\.msgType) == ["3"])
        #expect(delivered(actions).isEmpty)
        #expect(actions.contains { if case .refusedApplication("8", 2, _) = $0 { return true } else { return false } })
        // A session message that fails validation is only rejected: nothing for the application.
        let badHeartbeat = machine.received(peer("1", 3, []), now: 1)
        #expect(!badHeartbeat.contains { if case .refusedApplication = $0 { return true } else { return false } })
    }

    @Test func gapAtLogonIsRequested() throws {
        var machine = FIXSessionStateMachine(configuration: configuration, nextSenderSeqNum: 1, nextTargetSeqNum: 3)
        _ = machine.connected(now: 0)
        let actions = machine.received(peer("A", 6, [FIXField(98, "0"), FIXField(108, "30")]), now: 0)
        #expect(actions.first == .loggedOn)
        let request = try #require(sent(actions).first)
        #expect(request.msgType == "2" && request[7] == "3")
        // The counterparty gap-fills through its Logon.
        _ = machine.received(peer("8", 3, execReport("E3"), possDup: true), now: 1)
        _ = machine.received(peer("4", 4, [FIXField(123, "Y"), FIXField(36, "7")], possDup: true), now: 1)
        #expect(machine.nextTargetSeqNum == 7)
        #expect(!machine.isResending)
    }

    @Test func possDupBelowExpectedIsIgnoredButPlainLowSeqIsFatal() {
        var machine = loggedOn()
        _ = machine.received(peer("8", 2, execReport("E2")), now: 1)
        let duplicate = machine.received(peer("8", 2, execReport("E2"), possDup: true), now: 1)
        #expect(delivered(duplicate).isEmpty)
        #expect(machine.state == .active)
        let low = machine.received(peer("8", 2, execReport("E2")), now: 1)
        #expect(sent(low).map(\.msgType) == ["5"])
        #expect(closeReason(low) == .sequenceTooLow(expected: 3, received: 2))
    }

    @Test func answersResendRequestWithPossDupAndGapFills() throws {
        var machine = loggedOn()
        // Our messages: 1 Logon (admin), 2 D, 3 heartbeat (admin), 4 F.
        var stored: [Int: [UInt8]] = [:]
        let order = FIXMessage(msgType: "D", fields: [FIXField(11, "O1"), FIXField(55, "GLD"), FIXField(54, "1"),
                                                      FIXField(60, "20240101-00:00:00.000"), FIXField(40, "1"), FIXField(38, "10")])
        for case .send(let seq, let bytes, true) in try machine.send(order, now: 5 * second) { stored[seq] = bytes }
        for case .send(let seq, let bytes, true) in machine.tick(now: 40 * second) { stored[seq] = bytes }
        var cancel = order
        cancel.msgType = "F"
        cancel[41] = "O1"
        for case .send(let seq, let bytes, true) in try machine.send(cancel, now: 41 * second) { stored[seq] = bytes }
        let actions = machine.received(peer("2", 2, [FIXField(7, "1"), FIXField(16, "0")]), now: 42 * second)
        #expect(actions == [.resend(from: 1, through: 4)])
        let resent = sent(machine.resend(stored: stored, from: 1, through: 4, now: 43 * second))
        #expect(resent.map(\.msgType) == ["4", "D", "4", "F"])
        #expect(resent.map { $0[34] } == ["1", "2", "3", "4"])
        #expect(resent[0][123] == "Y" && resent[0][36] == "2" && resent[0][43] == "Y")
        #expect(resent[1][43] == "Y")
        #expect(resent[1][122] == FIXTimestamp.format(epochNanoseconds: 5 * second))
        #expect(resent[1][52] == FIXTimestamp.format(epochNanoseconds: 43 * second))
        #expect(resent[2][36] == "4")
        #expect(machine.nextSenderSeqNum == 5)
        // A message we no longer have is gap-filled too.
        let partial = sent(machine.resend(stored: [:], from: 2, through: 4, now: 44 * second))
        #expect(partial.map(\.msgType) == ["4"])
        #expect(partial[0][34] == "2" && partial[0][36] == "5")
    }

    @Test("a ResendRequest that comes while our Logout waits for its answer is served (the resent order is not left for a next Logon that may never come)")
    func resendRequestDuringOurLogoutIsServed() throws {
        var machine = loggedOn()
        var stored: [Int: [UInt8]] = [:]
        let order = FIXMessage(msgType: "D", fields: [FIXField(11, "O1"), FIXField(55, "GLD"), FIXField(54, "1"),
                                                      FIXField(60, "20240101-00:00:00.000"), FIXField(40, "1"), FIXField(38, "10")])
        for case .send(let seq, let bytes, true) in try machine.send(order, now: 5 * second) { stored[seq] = bytes }
        #expect(sent(machine.logout(now: 6 * second)).map(\.msgType) == ["5"])
        let actions = machine.received(peer("2", 2, [FIXField(7, "2"), FIXField(16, "0")]), now: 7 * second)
        #expect(actions == [.resend(from: 2, through: 3)], "EndSeqNo 0: through our last sent, the Logout")
        let resent = sent(machine.resend(stored: stored, from: 2, through: 3, now: 8 * second))
        #expect(resent.map(\.msgType) == ["D", "4"], "the order again, then a GapFill over the Logout: \(resent.map(\.msgType))")
        #expect(resent.first?[43] == "Y" && resent.first?[11] == "O1")
    }

    @Test("a BusinessMessageReject without RefSeqNum (45, optional in FIX 4.4) is delivered, not refused: it names its request by BusinessRejectRefID")
    func businessRejectWithoutRefSeqNumIsDelivered() {
        var machine = loggedOn()
        let actions = machine.received(peer("j", 2, [FIXField(372, "D"), FIXField(379, "O1"), FIXField(380, "4")]), now: 1)
        #expect(delivered(actions).map(\.msgType) == ["j"], "\(actions)")
        #expect(sent(actions).isEmpty, "no session Reject")
        // RefMsgType (372) and BusinessRejectReason (380) stay required.
        let refused = machine.received(peer("j", 3, [FIXField(379, "O1"), FIXField(380, "4")]), now: 1)
        #expect(delivered(refused).isEmpty && sent(refused).contains { $0.msgType == "3" && $0[371] == "372" }, "\(refused)")
    }

    @Test func resendRequestAheadOfAGapIsServedAtOnce() throws {
        var machine = loggedOn()
        // Both sides lost messages: theirs arrive with a gap, and their ResendRequest is among
        // them. Queueing it would deadlock (their resend gap-fills over it), so it is served now.
        let actions = machine.received(peer("2", 5, [FIXField(7, "1"), FIXField(16, "0")]), now: 1)
        #expect(actions.first == .resend(from: 1, through: 1))
        let ours = try #require(sent(actions).first)
        #expect(ours.msgType == "2" && ours[7] == "2")
        // Their resend gap-fills 2...5 (including the ResendRequest itself): nothing is replayed.
        let fill = machine.received(peer("4", 2, [FIXField(123, "Y"), FIXField(36, "6")], possDup: true), now: 2)
        #expect(fill.isEmpty)
        #expect(machine.nextTargetSeqNum == 6)
        #expect(!machine.isResending)
    }

    @Test func possDupWithoutOrigSendingTimeIsRejected() throws {
        var machine = loggedOn()
        let message = try FIXCodec.encode(FIXMessage(msgType: "8", fields: [
            FIXField(49, "EX"), FIXField(56, "FG"), FIXField(34, "2"), FIXField(43, "Y"), FIXField(52, "20240101-00:00:00.000"),
        ] + execReport("E2")))
        let actions = machine.received(message, now: 1)
        let reject = try #require(sent(actions).first)
        #expect(reject.msgType == "3" && reject[373] == "1" && reject[371] == "122")
        #expect(delivered(actions).isEmpty)
        #expect(machine.nextTargetSeqNum == 3)
    }

    @Test func sequenceResetInResetMode() {
        var machine = loggedOn()
        #expect(machine.received(peer("4", 99, [FIXField(36, "10")]), now: 1).isEmpty)
        #expect(machine.nextTargetSeqNum == 10)
        let lower = sent(machine.received(peer("4", 10, [FIXField(36, "5")]), now: 1))
        #expect(lower.map(\.msgType) == ["3"])
        #expect(lower.first?[373] == "5")
    }

    @Test("a SequenceReset to Int64.max, then a Heartbeat at Int64.max: Reject, then Logout; no overflow")
    func sequenceResetToInt64MaxThenHeartbeat() throws {
        var machine = loggedOn()
        let reset = sent(machine.received(peer("4", 2, [FIXField(36, String(Int.max))]), now: 1))
        #expect(reset.map(\.msgType) == ["3"])
        #expect(reset.first?[373] == "5" && reset.first?[371] == "36")
        #expect(machine.nextTargetSeqNum == 2)
        let heartbeat = machine.received(peer("0", Int.max), now: 1)
        #expect(sent(heartbeat).map(\.msgType) == ["5"])
        guard case .protocolViolation(let text)? = closeReason(heartbeat) else {
            Issue.record("expected a protocol violation: \(heartbeat)")
            return
        }
        #expect(text.contains("out of range"))
        #expect(machine.state == .disconnected)
    }

    @Test("a Heartbeat at Int64.max alone, then a GapFill to it: Logout; a GapFill or ResendRequest beyond the range: Reject")
    func int64MaxHeartbeatAndGapFill() throws {
        var machine = loggedOn()
        let heartbeat = machine.received(peer("0", Int.max), now: 1)
        #expect(sent(heartbeat).map(\.msgType) == ["5"])
        #expect(closeReason(heartbeat) != nil && machine.state == .disconnected)

        var gapFill = loggedOn()
        let fill = sent(gapFill.received(peer("4", 2, [FIXField(123, "Y"), FIXField(36, String(Int.max))]), now: 1))
        #expect(fill.map(\.msgType) == ["3"])
        #expect(fill.first?[373] == "5" && fill.first?[371] == "36")
        #expect(gapFill.nextTargetSeqNum == 3)
        // A gap fill queued ahead of a gap, processed once the gap closes.
        var queued = loggedOn()
        _ = queued.received(peer("4", 5, [FIXField(123, "Y"), FIXField(36, String(Int.max))], possDup: true), now: 1)
        let drained = sent(queued.received(peer("4", 2, [FIXField(123, "Y"), FIXField(36, "5")], possDup: true), now: 1))
        #expect(drained.map(\.msgType) == ["3"])
        #expect(queued.nextTargetSeqNum == 6)

        var resend = loggedOn()
        let answer = sent(resend.received(peer("2", 2, [FIXField(7, String(Int.max)), FIXField(16, "0")]), now: 1))
        #expect(answer.map(\.msgType) == ["3"])
        #expect(answer.first?[371] == "7")
        let end = sent(resend.received(peer("2", 3, [FIXField(7, "1"), FIXField(16, String(Int.max))]), now: 1))
        #expect(end.map(\.msgType) == ["3"])
        #expect(end.first?[371] == "16")
        #expect(resend.state == .active && resend.nextTargetSeqNum == 4)
    }

    @Test("an invalid message or a Logon at Int64.max ends the session instead of overflowing")
    func int64MaxOnInvalidMessageAndLogon() throws {
        var machine = loggedOn()
        let bad = frame("35=8|49=EX|56=FG|34=\(Int.max)|52=20240101-00:00:00.000|17=E1|17=E2|")
        let actions = machine.received(bad, now: 1)
        #expect(sent(actions).map(\.msgType) == ["5"])
        #expect(closeReason(actions) != nil)

        var logon = FIXSessionStateMachine(configuration: configuration)
        _ = logon.connected(now: 0)
        let answer = logon.received(peer("A", Int.max, [FIXField(98, "0"), FIXField(108, "30")]), now: 0)
        #expect(!answer.contains(.loggedOn))
        #expect(closeReason(answer) != nil)
        // Stored sequence numbers beyond the range are brought back within it.
        let restored = FIXSessionStateMachine(configuration: configuration, nextSenderSeqNum: Int.max, nextTargetSeqNum: Int.max)
        #expect(restored.nextSenderSeqNum == FIXSessionStateMachine.maximumSeqNum)
        #expect(restored.nextTargetSeqNum == FIXSessionStateMachine.maximumSeqNum)
    }

    @Test func malformedMessageInSequenceIsRejected() throws {
        var machine = loggedOn()
        let bad = frame("35=8|49=EX|56=FG|34=2|52=20240101-00:00:00.000|17=E1|17=E2|")
        let actions = machine.received(bad, now: 1)
        let reject = try #require(sent(actions).first)
        #expect(reject.msgType == "3")
        #expect(reject[45] == "2")
        #expect(reject[373] == "13")
        #expect(reject[371] == "17")
        #expect(reject[372] == "8")
        #expect(machine.nextTargetSeqNum == 3)
        #expect(delivered(actions).isEmpty)
    }

    @Test func garbledMessageIsIgnoredWithoutConsumingASequenceNumber() {
        var machine = loggedOn()
        var bad = peer("8", 2, execReport("E2"))
        bad[bad.count - 2] = bad[bad.count - 2] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        let actions = machine.received(bad, now: 1)
        #expect(sent(actions).isEmpty)
        #expect(machine.nextTargetSeqNum == 2)
    }

    @Test func wrongCompIDIsRejectedAndLoggedOut() {
        var machine = loggedOn()
        let wrong = try! FIXCodec.encode(FIXMessage(msgType: "0", fields: [FIXField(49, "XX"), FIXField(56, "FG"), FIXField(34, "2"),
                                                                             FIXField(52, "20240101-00:00:00.000")]))
        let actions = machine.received(wrong, now: 1)
        #expect(sent(actions).map(\.msgType) == ["3", "5"])
        #expect(sent(actions).first?[373] == "9")
        #expect(machine.state == .disconnected)
    }

    @Test func logoutBothWays() {
        var ours = loggedOn()
        #expect(sent(ours.logout(text: "bye", now: 1)).map(\.msgType) == ["5"])
        #expect(closeReason(ours.received(peer("5", 2), now: 2)) == .loggedOut(""))
        var theirs = loggedOn()
        let actions = theirs.received(peer("5", 2, [FIXField(58, "maintenance")]), now: 2)
        #expect(sent(actions).map(\.msgType) == ["5"])
        #expect(closeReason(actions) == .loggedOut("maintenance"))
        // Said in full either way: a Logout without Text has no reason to show after a colon.
        #expect(FIXSessionCloseReason.loggedOut("maintenance").description == "logged out: maintenance")
        #expect(FIXSessionCloseReason.loggedOut("").description == "logged out (no reason given)")
        #expect(FIXSessionCloseReason.logonRejected("").description == "logon rejected (no reason given)")
    }

    @Test func sendingNeedsALogonAndValidValues() throws {
        var machine = FIXSessionStateMachine(configuration: configuration)
        #expect(throws: FIXSendError.notLoggedOn) { try machine.send(FIXMessage(msgType: "D"), now: 0) }
        var active = loggedOn()
        #expect(throws: FIXSendError.encoding(.emptyValue(tag: 55))) { try active.send(FIXMessage(msgType: "D", fields: [FIXField(55, "")]), now: 0) }
        #expect(active.nextSenderSeqNum == 2)
    }

    @Test func sessionRejectOfOurMessageGoesToTheApplication() {
        var machine = loggedOn()
        let actions = machine.received(peer("3", 2, [FIXField(45, "7"), FIXField(373, "1"), FIXField(58, "missing tag")]), now: 1)
        #expect(delivered(actions).map(\.msgType) == ["3"])
    }
}

@Suite("FIX session store, timestamps, reconnect policy", .timeLimit(.minutes(5)))
struct SessionSupportTests {
    @Test func fileStoreSurvivesARestart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fixstore-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let store = try FileFIXSessionStore(directory: directory)
            #expect(store.nextSenderSeqNum == 1 && store.nextTargetSeqNum == 1)
            try store.setSequenceNumbers(sender: 12, target: 34)
            try store.storeMessage(seq: 11, bytes: Array("8=FIX.4.4\u{01}x\n".utf8))
            try store.storeMessage(seq: 10, bytes: [1, 2, 3])
        }
        let reopened = try FileFIXSessionStore(directory: directory)
        #expect(reopened.nextSenderSeqNum == 12 && reopened.nextTargetSeqNum == 34)
        #expect(reopened.messages(in: 1...11) == [10: [1, 2, 3], 11: Array("8=FIX.4.4\u{01}x\n".utf8)])
        try reopened.reset()
        let afterReset = try FileFIXSessionStore(directory: directory)
        #expect(afterReset.nextSenderSeqNum == 1 && afterReset.nextTargetSeqNum == 1)
        #expect(afterReset.messages(in: 1...100).isEmpty)
    }

    @Test("the file store keeps received fills across a restart, in two bounded generations, past a torn last line and a sequence reset")
    func fileStoreKeepsFills() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fixstore-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fills = (1...6).map { index in
            ExecutionReport(executionID: ExecutionID("E\(index)"), orderID: "P1-sl", symbol: index % 2 == 0 ? "GLD" : "SLV", side: .sell,
                            lastQuantity: Quantity(index * 10), lastPrice: Price("245.125")!, cumulativeQuantity: Quantity(index * 10),
                            leavesQuantity: 5, transactTime: 1_709_210_096_789_000_000, commission: Money("1.25")!)
        }
        do {
            let store = try FileFIXSessionStore(directory: directory, executionsKept: 2)
            #expect(store.storedExecutions.isEmpty)
            for fill in fills[0..<5] { try store.storeExecution(fill) }
            #expect(store.storedExecutions == Array(fills[2..<5]), "generations of 2: the newest full one and the current one")
        }
        let reopened = try FileFIXSessionStore(directory: directory, executionsKept: 2)
        #expect(reopened.storedExecutions == Array(fills[2..<5]), "every field read back exactly")
        // A kill in the middle of a line leaves it without its newline: it is not a fill, and the
        // next fill does not run into it.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/executions"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"executionID\":\"E9".utf8))
        try handle.close()
        let afterTear = try FileFIXSessionStore(directory: directory, executionsKept: 2)
        #expect(afterTear.storedExecutions == Array(fills[2..<5]))
        try afterTear.storeExecution(fills[5])
        try afterTear.reset()
        let afterReset = try FileFIXSessionStore(directory: directory, executionsKept: 2)
        #expect(afterReset.storedExecutions == Array(fills[2..<6]), "a sequence reset does not undo fills")
        #expect(afterReset.nextTargetSeqNum == 1)
    }

    @Test("a message logged past the recorded sending number (a kill between sending and recording) moves the next number past it; no temporary files pile up")
    func fileStoreSenderNumberCoversLoggedMessages() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fixstore-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let store = try FileFIXSessionStore(directory: directory)
            try store.setSequenceNumbers(sender: 471, target: 90)
            try store.storeMessage(seq: 470, bytes: [1])
            try store.storeMessage(seq: 471, bytes: [2])
            for sender in 472...480 { try store.setSequenceNumbers(sender: sender, target: 90) }
            try store.setSequenceNumbers(sender: 471, target: 90)
        }
        let reopened = try FileFIXSessionStore(directory: directory)
        #expect(reopened.nextSenderSeqNum == 472, "471 went out: the next is 472")
        #expect(reopened.nextTargetSeqNum == 90)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: directory)) == ["seqnums", "messages", "executions", "lock"])
    }

    @Test("seqnums is rewritten in place at one length: an earlier build's file is read and converted, a shorter number leaves no stale digits, and a file left aside goes")
    func fileStoreRewritesSequenceNumbersInPlace() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fixstore-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // As earlier builds left it: "sender target", and the aside file of a replace a kill cut short.
        try Data("12 34\n".utf8).write(to: URL(fileURLWithPath: directory + "/seqnums"))
        try Data("13 34\n".utf8).write(to: URL(fileURLWithPath: directory + "/seqnums.new"))
        func sequenceFile() throws -> String { try String(contentsOfFile: directory + "/seqnums", encoding: .utf8) }
        do {
            let store = try FileFIXSessionStore(directory: directory)
            #expect(store.nextSenderSeqNum == 12 && store.nextTargetSeqNum == 34)
            #expect(try sequenceFile() == "00000000000000000012 00000000000000000034\n")
            #expect(!FileManager.default.fileExists(atPath: directory + "/seqnums.new"))
            try store.setSequenceNumbers(sender: 123_456_789_012, target: 35)
            try store.setSequenceNumbers(sender: 7, target: 36)
            #expect(try sequenceFile() == "00000000000000000007 00000000000000000036\n")
        }
        let reopened = try FileFIXSessionStore(directory: directory)
        #expect(reopened.nextSenderSeqNum == 7 && reopened.nextTargetSeqNum == 36)
        try reopened.reset()
        #expect(try sequenceFile() == "00000000000000000001 00000000000000000001\n")
    }

    @Test("a message record cut short by a kill is cut off at the next start, so the messages logged after it can be resent too")
    func fileStoreCutsATornMessageRecord() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fixstore-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let store = try FileFIXSessionStore(directory: directory)
            try store.storeMessage(seq: 1, bytes: Array("first".utf8))
            try store.setSequenceNumbers(sender: 2, target: 1)
        }
        // The kill: the header and part of message 2's bytes reached the file.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/messages"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("2 6\nsec".utf8))
        try handle.close()
        do {
            let store = try FileFIXSessionStore(directory: directory)
            #expect(store.messages(in: 1...10) == [1: Array("first".utf8)])
            try store.storeMessage(seq: 2, bytes: Array("second".utf8))
            try store.storeMessage(seq: 3, bytes: Array("third\n3 9\n".utf8))
            #expect(store.messages(in: 2...3) == [2: Array("second".utf8), 3: Array("third\n3 9\n".utf8)], "read back from the log")
        }
        let reopened = try FileFIXSessionStore(directory: directory)
        #expect(reopened.messages(in: 1...10) == [1: Array("first".utf8), 2: Array("second".utf8), 3: Array("third\n3 9\n".utf8)])
        #expect(reopened.nextSenderSeqNum == 4, "3 was logged, so it went out: the next is 4")
        // Closed (a test playing a killed process): nothing more is written through its old descriptors.
        reopened.closeFiles()
        #expect(throws: FIXStoreError.self) { try reopened.storeMessage(seq: 4, bytes: [4]) }
        #expect(throws: FIXStoreError.self) { try reopened.setSequenceNumbers(sender: 5, target: 5) }
        #expect(reopened.messages(in: 1...10).isEmpty)
    }

    @Test("a synchronous store makes the logged messages and fills durable before each sequence number it records, then the number; an ordinary one never syncs")
    func synchronousStoreSyncsBeforeEachSequenceNumber() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fixstore-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fill = ExecutionReport(executionID: "E1", orderID: "P1-sl", symbol: "GLD", side: .sell, lastQuantity: 10, lastPrice: Price("245")!)
        let store = try FileFIXSessionStore(directory: directory, executionsKept: 2, synchronous: true)
        let opened = store.syncs
        #expect(opened >= 4, "the new files and the directory: \(opened)")
        try store.storeExecution(fill)
        try store.setSequenceNumbers(sender: 1, target: 2)
        #expect(store.syncs == opened + 3, "messages and executions, then seqnums")
        try store.setSequenceNumbers(sender: 1, target: 3)
        #expect(store.syncs == opened + 4, "nothing appended since: seqnums alone")
        try store.storeMessage(seq: 1, bytes: [1])
        try store.setSequenceNumbers(sender: 2, target: 3)
        #expect(store.syncs == opened + 7)
        try store.setSequenceNumbers(sender: 2, target: 3)
        #expect(store.syncs == opened + 7, "unchanged numbers write nothing")
        // A full generation moves aside: it is synced first, and the directory after.
        try store.storeExecution(fill)
        let beforeRotation = store.syncs
        try store.storeExecution(fill)
        #expect(store.syncs == beforeRotation + 3, "messages and executions before the move, the directory after it")
        let reopened = try FileFIXSessionStore(directory: directory, executionsKept: 2, synchronous: true)
        #expect(reopened.storedExecutions.count == 3 && reopened.nextSenderSeqNum == 2 && reopened.nextTargetSeqNum == 3)

        let ordinary = try FileFIXSessionStore(directory: directory + "-plain")
        defer { try? FileManager.default.removeItem(atPath: directory + "-plain") }
        try ordinary.storeExecution(fill)
        try ordinary.setSequenceNumbers(sender: 1, target: 2)
        #expect(ordinary.syncs == 0)
    }

    @Test("the in-memory store keeps the messages of its newest sequence numbers only, also across gaps and a reset")
    func inMemoryStoreKeepsABoundedWindowOfMessages() throws {
        let store = InMemoryFIXSessionStore(messagesKept: 3)
        for seq in [1, 2, 4, 5] { try store.storeMessage(seq: seq, bytes: [UInt8(seq)]) }
        #expect(store.messages(in: 1...10) == [4: [4], 5: [5]], "3 numbers back from 5: 3, 4, 5 (3 was an admin message, never stored)")
        try store.storeMessage(seq: 9, bytes: [9])
        #expect(store.messages(in: 1...10) == [9: [9]])
        try store.reset()
        try store.storeMessage(seq: 1, bytes: [1])
        try store.storeMessage(seq: 2, bytes: [2])
        #expect(store.messages(in: 1...10) == [1: [1], 2: [2]], "numbering starts again at 1 after a reset")
        #expect(InMemoryFIXSessionStore().messagesKept == 100_000)
    }

    @Test func inMemoryStoreKeepsFillsAcrossAReset() throws {
        let store = InMemoryFIXSessionStore()
        let fill = ExecutionReport(executionID: "E1", orderID: "P1-sl", symbol: "GLD", side: .sell, lastQuantity: 10, lastPrice: Price("245")!)
        try store.storeExecution(fill)
        try store.reset()
        #expect(store.storedExecutions == [fill])
    }

    @Test("a store path that is a file, not a directory, is refused in words, not with a raw system error")
    func storePathThatIsAFileIsRefused() throws {
        do {
            _ = try FileFIXSessionStore(directory: "/dev/null")
            Issue.record("a file was taken as the store's directory")
        } catch {
            #expect(error.description.contains("/dev/null is a file, not a directory"), "\(error)")
            #expect(!error.description.contains("NSCocoaErrorDomain"), "\(error)")
        }
    }

    @Test func corruptSequenceFileIsATypedError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fixstore-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data("banana".utf8).write(to: URL(fileURLWithPath: directory + "/seqnums"))
        #expect(throws: FIXStoreError.self) { try FileFIXSessionStore(directory: directory) }
    }

    @Test("a store a kill caught between creating its sequence file and writing it (empty, no message logged) opens fresh; an empty sequence file beside logged messages is still refused")
    func emptySequenceFileOfANewStore() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fixstore-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: directory + "/seqnums", contents: Data())
        let store = try FileFIXSessionStore(directory: directory)
        #expect(store.nextSenderSeqNum == 1 && store.nextTargetSeqNum == 1)
        try store.storeMessage(seq: 1, bytes: Array("logon".utf8))
        store.closeFiles()
        try Data().write(to: URL(fileURLWithPath: directory + "/seqnums"))
        #expect(throws: FIXStoreError.self) { try FileFIXSessionStore(directory: directory) }
        // Nor beside kept fills alone.
        try Data().write(to: URL(fileURLWithPath: directory + "/messages"))
        try Data("a fill".utf8).write(to: URL(fileURLWithPath: directory + "/executions"))
        #expect(throws: FIXStoreError.self) { try FileFIXSessionStore(directory: directory) }
    }

    @Test func truncatedLogKeepsCompleteRecords() {
        let log = Array("1 3\nabc2 10\nxy".utf8)
        #expect(FileFIXSessionStore.parseLog(log) == [1: Array("abc".utf8)])
        // A corrupt record length near Int.max ends the log; it must not overflow.
        #expect(FileFIXSessionStore.parseLog(Array("1 3\nabc2 \(Int.max)\nxy".utf8)) == [1: Array("abc".utf8)])
    }

    @Test func timestampsFormatAndParse() {
        #expect(FIXTimestamp.format(epochNanoseconds: 0) == "19700101-00:00:00.000")
        let instant: Int64 = 1_709_210_096_789_000_000 // 2024-02-29 12:34:56.789 UTC
        #expect(FIXTimestamp.format(epochNanoseconds: instant) == "20240229-12:34:56.789")
        #expect(FIXTimestamp.parse("20240229-12:34:56.789") == instant)
        #expect(FIXTimestamp.parse("20240229-12:34:56") == instant - 789_000_000)
        #expect(FIXTimestamp.parse("20240229-12:34:56.789123456") == instant + 123_456)
        #expect(FIXTimestamp.parse("2024-02-29") == nil)
        #expect(FIXTimestamp.parse("20241329-12:34:56") == nil)
    }

    @Test func reconnectBackoffGrowsToACap() {
        let policy = FIXReconnectPolicy(initialDelayNanoseconds: 100, multiplier: 2, maximumDelayNanoseconds: 1000, maximumAttempts: 6)
        #expect((1...6).map { policy.delay(attempt: $0) } == [100, 200, 400, 800, 1000, 1000])
        #expect(policy.delay(attempt: 7) == nil)
        #expect(policy.delay(attempt: 1, jitter: 255) == 50)
        #expect(FIXReconnectPolicy().delay(attempt: 1000) == 10_000_000_000)
    }
}
