/// Settings of one FIX session (the initiator side).
public struct FIXSessionConfiguration: Sendable, Hashable {
    /// BeginString (8).
    public var beginString: String
    /// Our SenderCompID (49).
    public var senderCompID: String
    /// The counterparty's CompID, our TargetCompID (56).
    public var targetCompID: String
    /// HeartBtInt (108), seconds.
    public var heartbeatInterval: Int
    /// Send ResetSeqNumFlag (141=Y) and start both sequences at 1 on the session's first Logon.
    /// Reconnections after that keep the sequences, so the resend recovers what was missed.
    public var resetSeqNumOnLogon: Bool
    /// How long to wait for the Logon answer (and for a Logout answer), seconds.
    public var logonTimeout: Int

    /// A session configuration.
    public init(beginString: String = FIXMessage.fix44, senderCompID: String, targetCompID: String, heartbeatInterval: Int = 30,
                resetSeqNumOnLogon: Bool = false, logonTimeout: Int = 10) {
        self.beginString = beginString
        self.senderCompID = senderCompID
        self.targetCompID = targetCompID
        self.heartbeatInterval = max(1, heartbeatInterval)
        self.resetSeqNumOnLogon = resetSeqNumOnLogon
        self.logonTimeout = max(1, logonTimeout)
    }
}

/// Why the session closed the connection.
public enum FIXSessionCloseReason: Sendable, Hashable, CustomStringConvertible {
    /// The counterparty answered our Logon with a Logout.
    case logonRejected(String)
    /// No Logon answer in time.
    case logonTimeout
    /// Logout exchanged (either side started it).
    case loggedOut(String)
    /// A TestRequest went unanswered.
    case heartbeatTimeout
    /// The counterparty's MsgSeqNum was below what we expected, without PossDupFlag.
    case sequenceTooLow(expected: Int, received: Int)
    /// Wrong CompIDs, a first message that is not a Logon, or a similar violation.
    case protocolViolation(String)
    /// The connection closed without a Logout (the counterparty or the network dropped it).
    case connectionLost

    /// A readable reason.
    public var description: String {
        switch self {
        case .logonRejected(let text): return text.isEmpty ? "logon rejected (no reason given)" : "logon rejected: \(text)"
        case .logonTimeout: return "no logon answer in time"
        case .loggedOut(let text): return text.isEmpty ? "logged out (no reason given)" : "logged out: \(text)"
        case .heartbeatTimeout: return "test request unanswered"
        case .sequenceTooLow(let expected, let received): return "MsgSeqNum too low, expecting \(expected) but received \(received)"
        case .protocolViolation(let text): return "protocol violation: \(text)"
        case .connectionLost: return "the connection was lost without a Logout"
        }
    }
}

/// What the session asks its driver to do. The state machine does no I/O itself.
public enum FIXSessionAction: Sendable, Hashable {
    /// Write these bytes. When `store` is true, persist them under `seq` first, for resends.
    case send(seq: Int, bytes: [UInt8], store: Bool)
    /// The counterparty asked for a resend: load our stored messages in `from...through` and pass
    /// them to `resend(stored:from:through:now:)`.
    case resend(from: Int, through: Int)
    /// An application message (or a session Reject about one of ours), in sequence order.
    case deliver(FIXMessage)
    /// The Logon was accepted.
    case loggedOn
    /// Close the connection.
    case close(FIXSessionCloseReason)
    /// A received message was discarded (garbled, duplicate); for logs.
    case ignored(String)
    /// An application message (an execution report, say) failed the session's validation and was
    /// answered with a Reject (3): it is not delivered, and the driver records it as a refused input.
    case refusedApplication(msgType: String, seq: Int, reason: String)
}

/// Why an application message could not be sent.
public enum FIXSendError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The session is not logged on.
    case notLoggedOn
    /// The message could not be encoded.
    case encoding(FIXEncodeError)

    /// A readable reason.
    public var description: String {
        switch self {
        case .notLoggedOn: return "FIX session not logged on"
        case .encoding(let error): return "cannot encode: \(error)"
        }
    }
}

/// The FIX session layer as a pure state machine: Logon, heartbeats and test requests, sequence
/// numbers, resend requests and gap fills both ways, PossDup handling, session rejects, Logout.
/// Feed it events (connected, bytes received, timer ticks, messages to send); it returns actions.
public struct FIXSessionStateMachine: Sendable {
    /// Where the session is.
    public enum State: Sendable, Hashable {
        /// No connection.
        case disconnected
        /// Logon sent, waiting for the answer.
        case logonSent
        /// Logged on: application messages flow.
        case active
        /// Logout sent, waiting for the answer.
        case logoutSent
    }

    /// The settings.
    public let configuration: FIXSessionConfiguration
    /// Where the session is.
    public private(set) var state: State = .disconnected
    /// MsgSeqNum of our next outgoing message.
    public private(set) var nextSenderSeqNum: Int
    /// MsgSeqNum we expect next from the counterparty.
    public private(set) var nextTargetSeqNum: Int

    private var stateSince: Int64 = 0
    private var lastSent: Int64 = 0
    private var lastReceived: Int64 = 0
    private var testRequest: (id: String, sentAt: Int64)?
    private var testRequestCounter = 0
    /// Messages received ahead of a gap, by MsgSeqNum, processed once the gap is filled.
    private var queued: [Int: FIXMessage] = [:]
    /// A SequenceReset moved the expected number on, perhaps past queued messages: the next
    /// drain looks for them (only then: a look at every message would cost the whole queue each).
    private var steppedOverQueued = false
    /// The highest MsgSeqNum our outstanding ResendRequest must reach; nil when none is out.
    private var resendTarget: Int?
    /// Progress of the outstanding ResendRequest: where the gap stood, since when, and how often
    /// it was asked for again. A counterparty that never fills a gap (or fills it with something
    /// refused) must not leave the messages queued behind it undelivered forever.
    private var resendWatch: (nextTarget: Int, since: Int64, repeats: Int)?
    /// How often a ResendRequest that makes no progress is sent again before the session is
    /// closed (the next Logon asks again from scratch).
    public static let resendRepeats = 3

    /// The highest MsgSeqNum, NewSeqNo, BeginSeqNo or EndSeqNo the session accepts (15 digits): far
    /// beyond any real session, and far enough below `Int.max` that no sequence arithmetic overflows.
    /// A counterparty's MsgSeqNum above it ends the session (Logout); a NewSeqNo, BeginSeqNo or
    /// EndSeqNo above it is answered with a Reject (3, value out of range).
    public static let maximumSeqNum = 999_999_999_999_999

    /// A session starting from stored sequence numbers (each kept within 1...`maximumSeqNum`).
    public init(configuration: FIXSessionConfiguration, nextSenderSeqNum: Int = 1, nextTargetSeqNum: Int = 1) {
        self.configuration = configuration
        self.nextSenderSeqNum = min(max(1, nextSenderSeqNum), Self.maximumSeqNum)
        self.nextTargetSeqNum = min(max(1, nextTargetSeqNum), Self.maximumSeqNum)
    }

    /// True while a ResendRequest of ours is outstanding.
    public var isResending: Bool { resendTarget != nil }

    /// True when the next Logon resets both sequences (configured, and no Logon succeeded yet).
    public var resetsOnNextLogon: Bool { configuration.resetSeqNumOnLogon && !hasLoggedOn }

    private var hasLoggedOn = false
    /// The Logon last sent asked for ResetSeqNumFlag (141=Y), or went out as number 1 (both
    /// sides then start at 1 whatever the answer says).
    private var logonAskedReset = false

    // MARK: Events

    /// The TCP connection is up: send Logon.
    public mutating func connected(now: Int64) -> [FIXSessionAction] {
        let reset = resetsOnNextLogon
        if reset {
            nextSenderSeqNum = 1
            nextTargetSeqNum = 1
        }
        queued = [:]
        resendTarget = nil
        resendWatch = nil
        testRequest = nil
        state = .logonSent
        stateSince = now
        lastReceived = now
        var fields = [FIXField(98, "0"), FIXField(108, String(configuration.heartbeatInterval))]
        if reset { fields.append(FIXField(141, "Y")) }
        logonAskedReset = reset || nextSenderSeqNum == 1
        return [sendAdmin(FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.logon, fields: fields), now: now)]
    }

    /// The connection dropped (or we closed it). Sequence numbers stay for the next Logon.
    public mutating func disconnected() {
        state = .disconnected
        queued = [:]
        resendTarget = nil
        resendWatch = nil
        testRequest = nil
    }

    /// Starts a Logout; the connection closes when the counterparty answers or on timeout.
    public mutating func logout(text: String = "", now: Int64) -> [FIXSessionAction] {
        guard state == .active || state == .logonSent else { return [] }
        state = .logoutSent
        stateSince = now
        var message = FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.logout)
        if !text.isEmpty { message.append(58, text) }
        return [sendAdmin(message, now: now)]
    }

    /// Sends an application message: adds the header, assigns the next MsgSeqNum.
    public mutating func send(_ message: FIXMessage, now: Int64) throws(FIXSendError) -> [FIXSessionAction] {
        guard state == .active else { throw .notLoggedOn }
        var outgoing = message
        outgoing.beginString = configuration.beginString
        let bytes: [UInt8]
        do {
            bytes = try FIXCodec.encode(withHeader(outgoing, seq: nextSenderSeqNum, now: now))
        } catch {
            throw .encoding(error)
        }
        let seq = nextSenderSeqNum
        nextSenderSeqNum += 1
        lastSent = now
        return [.send(seq: seq, bytes: bytes, store: true)]
    }

    /// Periodic check (call about once a second): heartbeats, test requests, timeouts.
    public mutating func tick(now: Int64) -> [FIXSessionAction] {
        let interval = Int64(configuration.heartbeatInterval) * 1_000_000_000
        switch state {
        case .disconnected:
            return []
        case .logonSent:
            if now - stateSince >= Int64(configuration.logonTimeout) * 1_000_000_000 {
                state = .disconnected
                return [.close(.logonTimeout)]
            }
            return []
        case .logoutSent:
            if now - stateSince >= Int64(configuration.logonTimeout) * 1_000_000_000 {
                state = .disconnected
                return [.close(.loggedOut("no logout answer"))]
            }
            return []
        case .active:
            var actions: [FIXSessionAction] = []
            if resendTarget != nil, let watch = resendWatch {
                // No progress on the gap for a while: ask again, then give up on the connection.
                let patience = min(max(interval, 1_000_000_000), 10_000_000_000)
                if nextTargetSeqNum != watch.nextTarget {
                    resendWatch = (nextTargetSeqNum, now, 0)
                } else if now - watch.since >= patience {
                    if watch.repeats >= Self.resendRepeats {
                        // Said with a Logout, as for any session ended on a protocol problem.
                        let reason = "the resend of \(nextTargetSeqNum) on was asked for \(watch.repeats + 1) times and never came"
                        var logoutMessage = FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.logout)
                        logoutMessage.append(58, reason)
                        let logout = sendAdmin(logoutMessage, now: now)
                        state = .disconnected
                        return [logout, .close(.protocolViolation(reason))]
                    }
                    resendWatch = (nextTargetSeqNum, now, watch.repeats + 1)
                    actions.append(resendRequestMessage(now: now))
                }
            }
            if let testRequest {
                if lastReceived > testRequest.sentAt {
                    // Anything received since the TestRequest shows the counterparty alive (as
                    // QuickFIX takes it), also when its Heartbeat waits behind a gap.
                    self.testRequest = nil
                } else if now - testRequest.sentAt >= interval {
                    state = .disconnected
                    return [.close(.heartbeatTimeout)]
                }
            } else if now - lastReceived >= interval + interval / 5 {
                testRequestCounter += 1
                let id = "TEST\(testRequestCounter)"
                testRequest = (id, now)
                actions.append(sendAdmin(FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.testRequest,
                                                    fields: [FIXField(112, id)]), now: now))
            }
            if now - lastSent >= interval {
                actions.append(sendAdmin(FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.heartbeat), now: now))
            }
            return actions
        }
    }

    /// One complete frame from the counterparty (from `FIXFrameDecoder`).
    public mutating func received(_ frame: [UInt8], now: Int64) -> [FIXSessionAction] {
        guard state != .disconnected else { return [.ignored("not connected")] }
        lastReceived = now
        let message: FIXMessage
        do {
            message = try FIXCodec.decode(frame, expectedBeginString: configuration.beginString)
        } catch {
            return receivedInvalid(error, now: now)
        }
        return received(message, now: now)
    }

    /// Answers a ResendRequest with our stored messages (MsgSeqNum to bytes): application
    /// messages go again with PossDupFlag=Y and OrigSendingTime; session messages and messages
    /// we no longer have become SequenceReset-GapFill.
    /// Also while our Logout waits for its answer: the side that started the Logout still
    /// serves resends (the counterparty may ask before it confirms).
    public mutating func resend(stored: [Int: [UInt8]], from: Int, through: Int, now: Int64) -> [FIXSessionAction] {
        guard state == .active || state == .logonSent || state == .logoutSent else { return [] }
        var actions: [FIXSessionAction] = []
        var gapStart: Int?
        let last = min(through, nextSenderSeqNum - 1)
        func flushGap(upTo newSeqNo: Int) {
            guard let start = gapStart else { return }
            let reset = FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.sequenceReset, fields: [
                FIXField(43, "Y"), FIXField(122, FIXTimestamp.format(epochNanoseconds: now)), FIXField(123, "Y"), FIXField(36, String(newSeqNo)),
            ])
            if let bytes = try? FIXCodec.encode(withHeader(reset, seq: start, now: now)) {
                actions.append(.send(seq: start, bytes: bytes, store: false))
            }
            gapStart = nil
        }
        if from <= last {
            for seq in from...last {
                if let bytes = stored[seq], let original = try? FIXCodec.decode(bytes, expectedBeginString: nil),
                   !FIXMsgType.admin.contains(original.msgType) {
                    flushGap(upTo: seq)
                    var again = original
                    let originalTime = original[52] ?? FIXTimestamp.format(epochNanoseconds: now)
                    again[43] = "Y"
                    again[122] = originalTime
                    again[52] = FIXTimestamp.format(epochNanoseconds: now)
                    if let encoded = try? FIXCodec.encode(again) {
                        actions.append(.send(seq: seq, bytes: encoded, store: false))
                        continue
                    }
                }
                if gapStart == nil { gapStart = seq }
            }
            flushGap(upTo: last + 1)
        }
        lastSent = now
        return actions
    }

    /// Answers an application message already delivered (and so in sequence) with a session
    /// Reject (3), for a field the application found malformed (SessionRejectReason 6) or out of
    /// range (5). Nothing when not logged on.
    public mutating func rejectDelivered(refSeqNum: Int, refMsgType: String, refTagID: Int, reason: Int, text: String,
                                         now: Int64) -> [FIXSessionAction] {
        guard state == .active || state == .logoutSent else { return [] }
        return [reject(refSeqNum: refSeqNum, refMsgType: refMsgType, reason: reason, refTagID: refTagID, text: text, now: now)]
    }

    // MARK: Receiving

    private mutating func receivedInvalid(_ error: FIXDecodeError, now: Int64) -> [FIXSessionAction] {
        if error.isGarbled { return [.ignored("garbled message: \(error)")] }
        guard let seq = error.msgSeqNum else { return [.ignored("invalid message without MsgSeqNum: \(error)")] }
        if seq > Self.maximumSeqNum { return seqNumOutOfRange(seq, now: now) }
        if state == .logonSent {
            state = .disconnected
            return [.close(.protocolViolation("invalid first message: \(error)"))]
        }
        guard seq == nextTargetSeqNum else {
            if seq > nextTargetSeqNum { return requestResend(upTo: seq, now: now) }
            return [.ignored("invalid old message \(seq): \(error)")]
        }
        nextTargetSeqNum += 1
        var actions = [reject(refSeqNum: seq, refMsgType: error.msgType, reason: error.sessionRejectReason, refTagID: error.refTagID,
                              text: error.description, now: now)]
        if let msgType = error.msgType, !FIXMsgType.isAdmin(msgType) {
            actions.append(.refusedApplication(msgType: msgType, seq: seq, reason: error.description))
        }
        actions += drainQueue(now: now)
        return actions
    }

    private mutating func received(_ message: FIXMessage, now: Int64) -> [FIXSessionAction] {
        let seq = message.int(34) ?? 0
        if message[49] != configuration.targetCompID || message[56] != configuration.senderCompID {
            var actions: [FIXSessionAction] = []
            if state == .active {
                actions.append(reject(refSeqNum: seq, refMsgType: message.msgType, reason: 9, refTagID: nil, text: "CompID problem", now: now))
                actions += logout(text: "CompID problem", now: now)
            }
            state = .disconnected
            actions.append(.close(.protocolViolation("CompID problem: \(message[49] ?? "")->\(message[56] ?? "")")))
            return actions
        }
        if seq > Self.maximumSeqNum { return seqNumOutOfRange(seq, now: now) }
        switch state {
        case .disconnected:
            return [.ignored("not connected")]
        case .logonSent:
            if message.msgType == FIXMsgType.logout {
                state = .disconnected
                return [.close(.logonRejected(message[58] ?? ""))]
            }
            guard message.msgType == FIXMsgType.logon else {
                state = .disconnected
                return [.close(.protocolViolation("first message is \(message.msgType), not Logon"))]
            }
            if message.flag(141), !logonAskedReset {
                // The counterparty reset both sides' numbers unasked: it would take this side's
                // next message as too high and ask for everything since 2 again, orders included,
                // which it may no longer know. Refused, said in a Logout: the two sides' settings
                // (ResetOnLogon) must agree.
                state = .disconnected
                let text = "the counterparty's Logon reset sequence numbers (ResetSeqNumFlag) that this side did not ask to reset; set ResetOnLogon on both sides or on neither"
                var logoutMessage = FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.logout)
                logoutMessage.append(58, text)
                return [sendAdmin(logoutMessage, now: now), .close(.protocolViolation(text))]
            }
            if message.flag(141) { nextTargetSeqNum = 1 }
            if seq < nextTargetSeqNum {
                // The counterparty lost its sequence numbers (or this is not its session): said in
                // a Logout, as FIX asks, so that its operators see why the session is refused.
                state = .disconnected
                let reason = FIXSessionCloseReason.sequenceTooLow(expected: nextTargetSeqNum, received: seq)
                var logoutMessage = FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.logout)
                logoutMessage.append(58, reason.description)
                return [sendAdmin(logoutMessage, now: now), .close(reason)]
            }
            state = .active
            hasLoggedOn = true
            lastReceived = now
            var actions: [FIXSessionAction] = [.loggedOn]
            if seq > nextTargetSeqNum {
                actions += requestResend(upTo: seq, now: now)
            } else {
                nextTargetSeqNum += 1
            }
            return actions
        case .active, .logoutSent:
            if message.msgType == FIXMsgType.sequenceReset && !message.flag(123) {
                return sequenceReset(message, now: now)
            }
            if message.msgType == FIXMsgType.logout && seq != nextTargetSeqNum {
                return logoutReceived(message, now: now)
            }
            if seq > nextTargetSeqNum {
                if message.msgType == FIXMsgType.resendRequest {
                    // Served at once even ahead of a gap (as QuickFIX does): when both sides ask
                    // for a resend, queueing it would deadlock, since the counterparty's own resend
                    // gap-fills over this very request.
                    return resendRequested(message, seq: seq, now: now) + requestResend(upTo: seq, now: now)
                }
                queued[seq] = message
                return requestResend(upTo: seq, now: now)
            }
            if seq < nextTargetSeqNum {
                if message.flag(43) { return [.ignored("duplicate \(message.msgType) \(seq)")] }
                state = .disconnected
                let reason = FIXSessionCloseReason.sequenceTooLow(expected: nextTargetSeqNum, received: seq)
                var logoutMessage = FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.logout)
                logoutMessage.append(58, reason.description)
                return [sendAdmin(logoutMessage, now: now), .close(reason)]
            }
            var actions = inSequence(message, seq: seq, now: now)
            actions += drainQueue(now: now)
            return actions
        }
    }

    /// Handles the message whose MsgSeqNum is the next expected, `seq`: processed, unless it is
    /// a possible duplicate that does not say when it was first sent.
    private mutating func inSequence(_ message: FIXMessage, seq: Int, now: Int64) -> [FIXSessionAction] {
        guard Self.lacksOrigSendingTime(message) else { return process(message, now: now) }
        nextTargetSeqNum = seq + 1
        return possDupRefused(message, seq: seq, now: now)
    }

    /// A possible duplicate must say when it was first sent (OrigSendingTime, 122).
    private static func lacksOrigSendingTime(_ message: FIXMessage) -> Bool {
        message.flag(43) && message[122] == nil && message.msgType != FIXMsgType.sequenceReset
    }

    /// Refuses a possible duplicate without OrigSendingTime: a Reject, and, for an application
    /// message, the runtime hears of it like any other invalid one (an execution report refused
    /// here may be a fill it never gets).
    private mutating func possDupRefused(_ message: FIXMessage, seq: Int, now: Int64) -> [FIXSessionAction] {
        var actions = [reject(refSeqNum: seq, refMsgType: message.msgType, reason: 1, refTagID: 122,
                              text: "PossDupFlag=Y without OrigSendingTime", now: now)]
        if !FIXMsgType.isAdmin(message.msgType) {
            actions.append(.refusedApplication(msgType: message.msgType, seq: seq, reason: "PossDupFlag=Y without OrigSendingTime (122)"))
        }
        return actions
    }

    /// Handles the in-sequence message `message` (MsgSeqNum == nextTargetSeqNum).
    private mutating func process(_ message: FIXMessage, now: Int64) -> [FIXSessionAction] {
        let seq = message.int(34) ?? nextTargetSeqNum
        nextTargetSeqNum = seq + 1
        switch message.msgType {
        case FIXMsgType.heartbeat:
            if let testRequest, message[112] == testRequest.id { self.testRequest = nil }
            return []
        case FIXMsgType.testRequest:
            return [sendAdmin(FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.heartbeat,
                                         fields: [FIXField(112, message[112] ?? "")]), now: now)]
        case FIXMsgType.resendRequest:
            return resendRequested(message, seq: seq, now: now)
        case FIXMsgType.sequenceReset:
            guard let newSeqNo = message.int(36) else { return [newSeqNoUnreadable(message, seq: seq, now: now)] }
            if newSeqNo <= seq {
                return [reject(refSeqNum: seq, refMsgType: message.msgType, reason: 5, refTagID: 36,
                               text: "attempt to lower sequence number, invalid value NewSeqNo=\(newSeqNo)", now: now)]
            }
            if newSeqNo > Self.maximumSeqNum {
                return [reject(refSeqNum: seq, refMsgType: message.msgType, reason: 5, refTagID: 36,
                               text: "NewSeqNo=\(newSeqNo) out of range (at most \(Self.maximumSeqNum))", now: now)]
            }
            nextTargetSeqNum = newSeqNo
            steppedOverQueued = true
            return []
        case FIXMsgType.logout:
            return logoutReceived(message, now: now)
        case FIXMsgType.logon:
            return [reject(refSeqNum: seq, refMsgType: message.msgType, reason: 99, refTagID: nil, text: "already logged on", now: now)]
        default:
            // Application messages and session Rejects about our messages go to the application.
            return [.deliver(message)]
        }
    }

    private mutating func resendRequested(_ message: FIXMessage, seq: Int, now: Int64) -> [FIXSessionAction] {
        guard let begin = message.int(7), let end = message.int(16), begin >= 1, end >= 0 else {
            return [reject(refSeqNum: seq, refMsgType: message.msgType, reason: 5, refTagID: 7, text: "bad BeginSeqNo/EndSeqNo", now: now)]
        }
        guard begin <= Self.maximumSeqNum, end <= Self.maximumSeqNum else {
            return [reject(refSeqNum: seq, refMsgType: message.msgType, reason: 5, refTagID: begin > Self.maximumSeqNum ? 7 : 16,
                           text: "BeginSeqNo/EndSeqNo \(begin)/\(end) out of range (at most \(Self.maximumSeqNum))", now: now)]
        }
        let through = end == 0 ? nextSenderSeqNum - 1 : min(end, nextSenderSeqNum - 1)
        return [.resend(from: begin, through: max(through, begin - 1))]
    }

    private mutating func logoutReceived(_ message: FIXMessage, now: Int64) -> [FIXSessionAction] {
        let text = message[58] ?? ""
        if state == .logoutSent {
            state = .disconnected
            return [.close(.loggedOut(text))]
        }
        let answer = sendAdmin(FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.logout), now: now)
        state = .disconnected
        return [answer, .close(.loggedOut(text))]
    }

    /// The Reject for a SequenceReset whose NewSeqNo is missing (SessionRejectReason 1) or not an
    /// integer (6).
    private mutating func newSeqNoUnreadable(_ message: FIXMessage, seq: Int, now: Int64) -> FIXSessionAction {
        guard let text = message[36] else {
            return reject(refSeqNum: seq, refMsgType: message.msgType, reason: 1, refTagID: 36, text: "NewSeqNo missing", now: now)
        }
        return reject(refSeqNum: seq, refMsgType: message.msgType, reason: 6, refTagID: 36,
                      text: "NewSeqNo \(sanitized(String(text.prefix(40)))) is not an integer", now: now)
    }

    /// SequenceReset in reset mode: MsgSeqNum is ignored; NewSeqNo may not go back.
    private mutating func sequenceReset(_ message: FIXMessage, now: Int64) -> [FIXSessionAction] {
        let seq = message.int(34) ?? 0
        guard let newSeqNo = message.int(36) else { return [newSeqNoUnreadable(message, seq: seq, now: now)] }
        if newSeqNo < nextTargetSeqNum {
            return [reject(refSeqNum: seq, refMsgType: message.msgType, reason: 5, refTagID: 36,
                           text: "attempt to lower sequence number, invalid value NewSeqNo=\(newSeqNo)", now: now)]
        }
        if newSeqNo > Self.maximumSeqNum {
            return [reject(refSeqNum: seq, refMsgType: message.msgType, reason: 5, refTagID: 36,
                           text: "NewSeqNo=\(newSeqNo) out of range (at most \(Self.maximumSeqNum))", now: now)]
        }
        nextTargetSeqNum = newSeqNo
        steppedOverQueued = true
        return drainQueue(now: now)
    }

    /// Takes out the queued messages a SequenceReset (GapFill or Reset) stepped over, below
    /// `target`, oldest first. They came intact, so what they say stands: an application message
    /// (an execution report the counterparty will not resend: a fill) is delivered, and a
    /// session Reject, like one in sequence; a Heartbeat still answers our TestRequest. Other
    /// session messages among them are dropped, said.
    private mutating func releaseSteppedOver(below target: Int, now: Int64) -> [FIXSessionAction] {
        let steppedOver = queued.keys.filter { $0 < target }.sorted()
        var actions: [FIXSessionAction] = []
        for seq in steppedOver {
            guard let message = queued.removeValue(forKey: seq) else { continue }
            switch message.msgType {
            case FIXMsgType.heartbeat:
                if let testRequest, message[112] == testRequest.id { self.testRequest = nil }
            case FIXMsgType.testRequest, FIXMsgType.resendRequest, FIXMsgType.sequenceReset, FIXMsgType.logout, FIXMsgType.logon:
                actions.append(.ignored("\(message.msgType) \(seq), queued behind a gap a SequenceReset to \(target) stepped over"))
            default:
                actions += Self.lacksOrigSendingTime(message) ? possDupRefused(message, seq: seq, now: now) : [.deliver(message)]
            }
        }
        return actions
    }

    /// A counterparty MsgSeqNum above `maximumSeqNum`: it can never be brought into sequence (and
    /// one past it would overflow), so the session ends: Logout when logged on, then close.
    private mutating func seqNumOutOfRange(_ seq: Int, now: Int64) -> [FIXSessionAction] {
        let text = "MsgSeqNum \(seq) out of range (at most \(Self.maximumSeqNum))"
        var actions: [FIXSessionAction] = []
        if state == .active || state == .logoutSent {
            var logoutMessage = FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.logout)
            logoutMessage.append(58, text)
            actions.append(sendAdmin(logoutMessage, now: now))
        }
        state = .disconnected
        actions.append(.close(.protocolViolation(text)))
        return actions
    }

    /// Processes queued messages that are now in sequence; ends the resend when the gap is closed.
    private mutating func drainQueue(now: Int64) -> [FIXSessionAction] {
        var actions: [FIXSessionAction] = []
        while state == .active || state == .logoutSent {
            if steppedOverQueued {
                steppedOverQueued = false
                actions += releaseSteppedOver(below: nextTargetSeqNum, now: now)
            }
            guard let next = queued.removeValue(forKey: nextTargetSeqNum) else { break }
            actions += inSequence(next, seq: nextTargetSeqNum, now: now)
        }
        if let target = resendTarget, nextTargetSeqNum > target {
            resendTarget = nil
            resendWatch = nil
        }
        if let watch = resendWatch, watch.nextTarget != nextTargetSeqNum { resendWatch = (nextTargetSeqNum, now, 0) }
        return actions
    }

    /// Asks for everything from nextTargetSeqNum on, unless an outstanding request already does.
    private mutating func requestResend(upTo seq: Int, now: Int64) -> [FIXSessionAction] {
        if let target = resendTarget {
            resendTarget = max(target, seq)
            return []
        }
        resendTarget = seq
        resendWatch = (nextTargetSeqNum, now, 0)
        return [resendRequestMessage(now: now)]
    }

    /// A ResendRequest for everything from the next expected MsgSeqNum on.
    private mutating func resendRequestMessage(now: Int64) -> FIXSessionAction {
        sendAdmin(FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.resendRequest,
                             fields: [FIXField(7, String(nextTargetSeqNum)), FIXField(16, "0")]), now: now)
    }

    private mutating func reject(refSeqNum: Int, refMsgType: String?, reason: Int, refTagID: Int?, text: String, now: Int64) -> FIXSessionAction {
        var message = FIXMessage(beginString: configuration.beginString, msgType: FIXMsgType.reject, fields: [FIXField(45, String(refSeqNum))])
        if let refTagID { message.append(371, String(refTagID)) }
        if let refMsgType, !refMsgType.isEmpty { message.append(372, refMsgType) }
        message.append(373, String(reason))
        message.append(58, sanitized(text))
        return sendAdmin(message, now: now)
    }

    /// Sends a session message with the next MsgSeqNum (stored like any other, for gap fills).
    private mutating func sendAdmin(_ message: FIXMessage, now: Int64) -> FIXSessionAction {
        let seq = nextSenderSeqNum
        nextSenderSeqNum += 1
        lastSent = now
        // Admin messages are built here from valid values; encoding cannot fail.
        let bytes = (try? FIXCodec.encode(withHeader(message, seq: seq, now: now))) ?? []
        return .send(seq: seq, bytes: bytes, store: true)
    }

    private func withHeader(_ message: FIXMessage, seq: Int, now: Int64) -> FIXMessage {
        var out = message
        out.fields.removeAll { [49, 56, 34, 52].contains($0.tag) }
        out.fields.insert(contentsOf: [
            FIXField(49, configuration.senderCompID), FIXField(56, configuration.targetCompID), FIXField(34, String(seq)),
            FIXField(52, FIXTimestamp.format(epochNanoseconds: now)),
        ], at: 0)
        return out
    }

    private func sanitized(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F }.map(Character.init))
        return cleaned.isEmpty ? "invalid message" : cleaned
    }
}

/// When to try connecting again after a connection fails: exponential backoff with a cap.
public struct FIXReconnectPolicy: Sendable, Hashable {
    /// Delay before the first retry, nanoseconds.
    public var initialDelayNanoseconds: Int64
    /// Growth per failed attempt.
    public var multiplier: Int64
    /// Upper bound on the delay, nanoseconds.
    public var maximumDelayNanoseconds: Int64
    /// Attempts before giving up; nil retries forever.
    public var maximumAttempts: Int?

    /// A backoff policy; defaults 100 ms doubling up to 10 s, forever.
    public init(initialDelayNanoseconds: Int64 = 100_000_000, multiplier: Int64 = 2, maximumDelayNanoseconds: Int64 = 10_000_000_000,
                maximumAttempts: Int? = nil) {
        self.initialDelayNanoseconds = max(0, initialDelayNanoseconds)
        self.multiplier = max(1, multiplier)
        self.maximumDelayNanoseconds = max(self.initialDelayNanoseconds, maximumDelayNanoseconds)
        self.maximumAttempts = maximumAttempts
    }

    /// The delay before attempt `attempt` (1 for the first retry), or nil when attempts are used up.
    /// `jitter` in 0...255 scales the delay down by up to half, so reconnecting clients spread out.
    public func delay(attempt: Int, jitter: UInt8 = 0) -> Int64? {
        if let maximumAttempts, attempt > maximumAttempts { return nil }
        var delay = initialDelayNanoseconds
        var step = 1
        while step < attempt && delay < maximumDelayNanoseconds {
            let (product, overflow) = delay.multipliedReportingOverflow(by: multiplier)
            delay = overflow ? maximumDelayNanoseconds : product
            step += 1
        }
        delay = min(delay, maximumDelayNanoseconds)
        return delay - delay / 2 * Int64(jitter) / 255
    }
}
