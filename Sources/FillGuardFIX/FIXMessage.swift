/// One tag=value field of a FIX message.
public struct FIXField: Sendable, Hashable, CustomStringConvertible {
    /// The field's tag number (positive).
    public var tag: Int
    /// The field's value, as sent on the wire (never empty, never containing SOH except in data fields).
    public var value: String

    /// A field from its tag and text value.
    public init(_ tag: Int, _ value: String) {
        self.tag = tag
        self.value = value
    }

    /// "35=D".
    public var description: String { "\(tag)=\(value)" }
}

/// A FIX message: its type and its fields in wire order, without BeginString (8), BodyLength (9),
/// MsgType (35) and CheckSum (10), which the codec writes and checks itself.
public struct FIXMessage: Sendable, Hashable, CustomStringConvertible {
    /// BeginString (8), "FIX.4.4".
    public var beginString: String
    /// MsgType (35): "D", "8", "A"...
    public var msgType: String
    /// Every other field in wire order (standard header fields first when encoded).
    public var fields: [FIXField]

    /// A message of `msgType` with `fields`.
    public init(beginString: String = FIXMessage.fix44, msgType: String, fields: [FIXField] = []) {
        self.beginString = beginString
        self.msgType = msgType
        self.fields = fields
    }

    /// The FIX 4.4 BeginString.
    public static let fix44 = "FIX.4.4"

    /// The first value of `tag`, nil if absent.
    public subscript(tag: Int) -> String? {
        get { fields.first(where: { $0.tag == tag })?.value }
        set {
            if let index = fields.firstIndex(where: { $0.tag == tag }) {
                if let newValue { fields[index].value = newValue } else { fields.remove(at: index) }
            } else if let newValue {
                fields.append(FIXField(tag, newValue))
            }
        }
    }

    /// The first value of `tag` as an integer, nil if absent or not a FIX `int` (digits, with
    /// an optional leading minus; no plus sign). A valid integer beyond `Int`'s range comes back
    /// as `Int.max` (or `Int.min`), so range checks refuse it as out of range, not as missing.
    public func int(_ tag: Int) -> Int? { self[tag].flatMap(Self.integer) }

    /// Parses a FIX `int` (see `int(_:)`).
    static func integer(_ text: String) -> Int? {
        var digits = Substring(text)
        var negative = false
        if digits.first == "-" {
            negative = true
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        guard let magnitude = Int(digits) else { return negative ? .min : .max }
        return negative ? -magnitude : magnitude
    }

    /// True when `tag` is present with value "Y".
    public func flag(_ tag: Int) -> Bool { self[tag] == "Y" }

    /// Appends a field.
    public mutating func append(_ tag: Int, _ value: String) { fields.append(FIXField(tag, value)) }

    /// The instances of the repeating group counted by `countTag`, each as its fields in order
    /// (a nested group's fields included). Uses `spec` (the FIX 4.4 dictionary's groups for this
    /// message type by default) to know which tags belong to the group.
    public func groups(_ countTag: Int, spec: FIXGroupSpec = .standard) -> [[FIXField]] {
        guard spec.members(of: countTag, in: msgType) != nil,
              let start = fields.firstIndex(where: { $0.tag == countTag }) else { return [] }
        var instances: [[FIXField]] = []
        _ = spec.groups(of: msgType).walkGroup(countTag, fields: fields, from: start + 1) { instance in
            instances.append(Array(fields[instance]))
        }
        return instances
    }

    /// The message with SOH shown as "|", for logs and test failures.
    public var description: String {
        (["8=\(beginString)", "35=\(msgType)"] + fields.map(\.description)).joined(separator: "|")
    }
}

/// Which tags make up each repeating group the codec knows, so repeated tags inside a group are
/// not taken for duplicates. The first member of each group is its delimiter; a member that is
/// itself a count tag starts a nested group (a party's sub-ids inside its party).
public struct FIXGroupSpec: Sendable, Hashable {
    /// Member tags by the group's count (NoXxx) tag, for any message type (and for a count tag a
    /// message type's own table lacks).
    public var members: [Int: [Int]]
    /// Member tags by count tag for each message type whose groups are known exactly (the data
    /// dictionary's): one count tag can hold different members in different messages.
    public var byMessageType: [String: [Int: [Int]]]

    /// A group specification.
    public init(members: [Int: [Int]], byMessageType: [String: [Int: [Int]]] = [:]) {
        self.members = members
        self.byMessageType = byMessageType
    }

    /// The member tags of the group `countTag` counts in a message of type `msgType`, nil when
    /// `countTag` counts no group there.
    public func members(of countTag: Int, in msgType: String) -> [Int]? {
        byMessageType[msgType]?[countTag] ?? members[countTag]
    }

    /// The groups of one message type, looked up once per message (not once per field).
    func groups(of msgType: String) -> MessageGroups {
        MessageGroups(typed: byMessageType[msgType], common: members)
    }

    /// The groups of one message type: its own table first, then the common one.
    struct MessageGroups {
        let typed: [Int: [Int]]?
        let common: [Int: [Int]]

        /// The member tags of the group `countTag` counts, nil when it counts none.
        func members(of countTag: Int) -> [Int]? {
            typed?[countTag] ?? common[countTag]
        }

        /// Walks the instances of the group `countTag` counts, which start at `fields[start]`,
        /// nested groups included; calls `instance` with each instance's range. Returns the
        /// index after the group, or the first problem found: a repeated member within one
        /// instance (`duplicate`), a member before the first delimiter (`undelimited`), a nested
        /// group's count that is wrong. The group's own declared count is not checked.
        func walkGroup(_ countTag: Int, fields: [FIXField], from start: Int,
                       instance: (Range<Int>) -> Void = { _ in }) -> GroupWalk {
            guard let members = members(of: countTag), let delimiter = members.first else {
                return .end(start, instances: 0)
            }
            var position = start
            var instances = 0
            var instanceStart = start
            var instanceTags = Set<Int>()
            while position < fields.count, members.contains(fields[position].tag) {
                let member = fields[position].tag
                if member == delimiter {
                    if instances > 0 { instance(instanceStart..<position) }
                    instances += 1
                    instanceStart = position
                    instanceTags = [member]
                } else if instances == 0 {
                    return .undelimited(countTag)
                } else if !instanceTags.insert(member).inserted {
                    return .duplicate(member)
                }
                position += 1
                if self.members(of: member) != nil {
                    guard let nestedCount = FIXMessage.integer(fields[position - 1].value), nestedCount >= 0 else {
                        return .badCount(member, fields[position - 1].value)
                    }
                    switch walkGroup(member, fields: fields, from: position) {
                    case .end(let next, let nestedInstances):
                        if nestedInstances != nestedCount { return .wrongCount(member, declared: nestedCount, actual: nestedInstances) }
                        position = next
                    case .undelimited(member):
                        return .wrongCount(member, declared: nestedCount, actual: 0)
                    case let problem:
                        return problem
                    }
                }
            }
            if instances > 0 { instance(instanceStart..<position) }
            return .end(position, instances: instances)
        }
    }

    /// How a walk over a group ended.
    enum GroupWalk {
        /// The group ends before `next`, with this many instances.
        case end(_ next: Int, instances: Int)
        /// A member repeated within one instance.
        case duplicate(Int)
        /// A member came before the group's first delimiter.
        case undelimited(Int)
        /// A nested count tag whose value is not a count.
        case badCount(Int, String)
        /// A nested group whose instances do not match its count.
        case wrongCount(Int, declared: Int, actual: Int)
    }

    /// The FIX 4.4 groups: the data dictionary's for the message types FillGuard sends or reads,
    /// and for any other type the common ones of session and order-routing messages.
    public static let standard = FIXGroupSpec(members: [
        384: [372, 385],                     // NoMsgTypes (Logon)
        453: [448, 447, 452, 802],           // NoPartyIDs
        802: [523, 803],                     // NoPartySubIDs
        136: [137, 138, 139, 891],           // NoMiscFees
        382: [375, 337, 437, 438, 655],      // NoContraBrokers
        454: [455, 456],                     // NoSecurityAltID
        232: [233, 234],                     // NoStipulations
        518: [519, 520, 521],                // NoContAmts
        78: [79, 661, 736, 467, 539, 80],    // NoAllocs
        539: [524, 525, 538, 804],           // NoNestedPartyIDs
        804: [545, 805],                     // NoNestedPartySubIDs
        768: [769, 770, 771],                // NoTrdRegTimestamps
        864: [865, 866, 867, 868],           // NoEvents
        267: [269],                          // NoMDEntryTypes (MarketDataRequest)
        702: [703, 704, 705, 706],           // NoPositions (PositionReport's PositionQty)
        753: [707, 708],                     // NoPosAmt (PositionReport's PositionAmountData)
        146: [55, 65, 48, 22],               // NoRelatedSym (MarketDataRequest, Instrument's leading fields)
        268: [269, 270, 15, 271, 272, 273, 274, 275, 336, 625, 276, 277, 282, 283, 284, 286, 59, 432, 126, 110, 18,
              287, 37, 299, 288, 289, 346, 290, 546, 811, 58, 354, 355],  // NoMDEntries (MarketDataSnapshotFullRefresh)
    ], byMessageType: fix44ByMessageType)
}

/// Tag numbers used by FillGuard's FIX 4.4 messages.
public enum FIXTag {
    /// BeginString.
    public static let beginString = 8
    /// BodyLength.
    public static let bodyLength = 9
    /// CheckSum.
    public static let checkSum = 10
    /// MsgType.
    public static let msgType = 35
    /// MsgSeqNum.
    public static let msgSeqNum = 34
    /// SenderCompID.
    public static let senderCompID = 49
    /// TargetCompID.
    public static let targetCompID = 56
    /// SendingTime.
    public static let sendingTime = 52
    /// PossDupFlag.
    public static let possDupFlag = 43
    /// PossResend.
    public static let possResend = 97
    /// OrigSendingTime.
    public static let origSendingTime = 122
    /// EncryptMethod.
    public static let encryptMethod = 98
    /// HeartBtInt.
    public static let heartBtInt = 108
    /// ResetSeqNumFlag.
    public static let resetSeqNumFlag = 141
    /// TestReqID.
    public static let testReqID = 112
    /// BeginSeqNo.
    public static let beginSeqNo = 7
    /// EndSeqNo.
    public static let endSeqNo = 16
    /// NewSeqNo.
    public static let newSeqNo = 36
    /// GapFillFlag.
    public static let gapFillFlag = 123
    /// RefSeqNum.
    public static let refSeqNum = 45
    /// RefTagID.
    public static let refTagID = 371
    /// RefMsgType.
    public static let refMsgType = 372
    /// SessionRejectReason.
    public static let sessionRejectReason = 373
    /// Text.
    public static let text = 58
    /// Account.
    public static let account = 1
    /// AvgPx.
    public static let avgPx = 6
    /// ClOrdID.
    public static let clOrdID = 11
    /// Commission.
    public static let commission = 12
    /// CumQty.
    public static let cumQty = 14
    /// ExecID.
    public static let execID = 17
    /// HandlInst.
    public static let handlInst = 21
    /// LastPx.
    public static let lastPx = 31
    /// LastQty.
    public static let lastQty = 32
    /// OrderID (the broker's).
    public static let orderID = 37
    /// OrderQty.
    public static let orderQty = 38
    /// OrdStatus.
    public static let ordStatus = 39
    /// OrdType.
    public static let ordType = 40
    /// OrigClOrdID.
    public static let origClOrdID = 41
    /// Price.
    public static let price = 44
    /// Side.
    public static let side = 54
    /// Symbol.
    public static let symbol = 55
    /// TimeInForce.
    public static let timeInForce = 59
    /// TransactTime.
    public static let transactTime = 60
    /// StopPx.
    public static let stopPx = 99
    /// OrdRejReason.
    public static let ordRejReason = 103
    /// CxlRejReason.
    public static let cxlRejReason = 102
    /// ExecType.
    public static let execType = 150
    /// LeavesQty.
    public static let leavesQty = 151
    /// CxlRejResponseTo.
    public static let cxlRejResponseTo = 434
    /// MassStatusReqID.
    public static let massStatusReqID = 584
    /// MassStatusReqType.
    public static let massStatusReqType = 585
    /// TotNumReports.
    public static let totNumReports = 911
    /// LastRptRequested.
    public static let lastRptRequested = 912
    /// OrdStatusReqID.
    public static let ordStatusReqID = 790
    /// BusinessRejectReason.
    public static let businessRejectReason = 380
    /// BusinessRejectRefID.
    public static let businessRejectRefID = 379

    /// Standard header tags: written right after MsgType, in this order when present.
    public static let header: [Int] = [49, 56, 115, 128, 90, 91, 50, 142, 57, 143, 116, 144, 129, 145, 34, 43, 97, 52, 122, 212, 213, 347, 369, 627]
    /// Data fields and the length field that precedes each.
    public static let dataLength: [Int: Int] = [89: 93, 91: 90, 96: 95, 213: 212, 349: 348, 351: 350, 355: 354, 357: 356, 359: 358]
}

/// FIX message types FillGuard sends or handles.
public enum FIXMsgType {
    /// True for the session layer's own messages (Heartbeat, TestRequest, ResendRequest, Reject,
    /// SequenceReset, Logout, Logon); false for application messages.
    public static func isAdmin(_ msgType: String) -> Bool {
        [heartbeat, testRequest, resendRequest, reject, sequenceReset, logout, logon].contains(msgType)
    }

    /// Heartbeat (0).
    public static let heartbeat = "0"
    /// TestRequest (1).
    public static let testRequest = "1"
    /// ResendRequest (2).
    public static let resendRequest = "2"
    /// Reject (3).
    public static let reject = "3"
    /// SequenceReset (4).
    public static let sequenceReset = "4"
    /// Logout (5).
    public static let logout = "5"
    /// Logon (A).
    public static let logon = "A"
    /// ExecutionReport (8).
    public static let executionReport = "8"
    /// OrderCancelReject (9).
    public static let orderCancelReject = "9"
    /// NewOrderSingle (D).
    public static let newOrderSingle = "D"
    /// OrderCancelRequest (F).
    public static let orderCancelRequest = "F"
    /// OrderCancelReplaceRequest (G).
    public static let orderCancelReplaceRequest = "G"
    /// OrderStatusRequest (H).
    public static let orderStatusRequest = "H"
    /// OrderMassStatusRequest (AF).
    public static let orderMassStatusRequest = "AF"
    /// BusinessMessageReject (j).
    public static let businessMessageReject = "j"
    /// MarketDataRequest (V).
    public static let marketDataRequest = "V"
    /// MarketDataSnapshotFullRefresh (W).
    public static let marketDataSnapshot = "W"
    /// MarketDataRequestReject (Y).
    public static let marketDataRequestReject = "Y"
    /// RequestForPositions (AN).
    public static let requestForPositions = "AN"
    /// RequestForPositionsAck (AO).
    public static let requestForPositionsAck = "AO"
    /// PositionReport (AP).
    public static let positionReport = "AP"

    /// Session-level (administrative) message types.
    public static let admin: Set<String> = ["0", "1", "2", "3", "4", "5", "A"]
}
