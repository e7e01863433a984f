import FillGuard
@testable import FillGuardCore
@testable import FillGuardSimulator
import Testing
@testable import FillGuardFIX

@Suite("FIX market data, settings files and the ground truth check", .timeLimit(.minutes(5)))
struct MarketDataAndSettingsTests {
    func snapshot(_ key: String, _ symbol: String, _ entries: [(String, String)]) -> FIXMessage {
        var message = FIXMessage(msgType: "W", fields: [FIXField(262, key), FIXField(55, symbol), FIXField(268, String(entries.count))])
        for (type, price) in entries {
            message.append(269, type)
            message.append(270, price)
        }
        return message
    }

    @Test("the Logon hint says which side's sequence numbers are behind")
    func logonHintPointsTheRightWay() {
        var settings = FIXSettings()
        settings.storePath = "st"
        // Our session refused the counterparty's Logon: it went back (started over without its store).
        let theirsBehind = FIXSimulationSession.logonHint(FIXBrokerError.sessionClosed(.sequenceTooLow(expected: 20_881, received: 1)), settings: settings)
        #expect(theirsBehind.contains("the counterparty's sequence numbers are behind what the store st expects") && theirsBehind.contains("started over"), "\(theirsBehind)")
        // The counterparty refused ours: this store is behind what it kept.
        let oursBehind = FIXSimulationSession.logonHint(FIXBrokerError.sessionClosed(.loggedOut("MsgSeqNum too low, expecting 40 but received 1")), settings: settings)
        #expect(oursBehind.contains("the store st is behind the counterparty's sequence numbers"), "\(oursBehind)")
        #expect(FIXSimulationSession.logonHint(FIXBrokerError.sessionClosed(.logonTimeout), settings: settings).isEmpty)
    }

    @Test func marketDataRequestFieldsAndAnswers() throws {
        var router = FIXOrderRouter()
        let plan = router.marketDataRequest(["GLD", "SLV"], subscription: .subscribe)
        guard case .send(let message, let key) = plan else { Issue.record("expected a request, got \(plan)"); return }
        #expect(message.msgType == "V")
        #expect(message[262] == key && message[263] == "1" && message[264] == "1" && message[265] == "0")
        #expect(message.groups(267).map { $0.map(\.description) } == [["269=2"]])
        #expect(message.groups(146).map { $0.map(\.description) } == [["55=GLD"], ["55=SLV"]])
        // The codec reads a snapshot with a repeating group of entries (bid, trade).
        var gld = snapshot(key, "GLD", [("0", "247.9"), ("2", "248.1")])
        gld.fields = [FIXField(49, "EX"), FIXField(56, "FG"), FIXField(34, "7"), FIXField(52, "20240229-12:34:56.789")] + gld.fields
        let wire = try FIXCodec.encode(gld)
        let decoded = try FIXCodec.decode(wire)
        #expect(router.received(decoded).isEmpty, "one of two symbols answered: still waiting")
        #expect(router.received(snapshot(key, "SLV", [("2", "30.05")])) == [.prices(key: key, ["GLD": Price("248.1")!, "SLV": Price("30.05")!])])
        #expect(router.pendingCount == 0)
        // Later updates of the subscription are not answers to anything.
        #expect(router.received(snapshot(key, "GLD", [("2", "249")])).count == 1)

        let refused = router.marketDataRequest(["GLD"], subscription: .snapshot)
        guard case .send(let second, let secondKey) = refused else { Issue.record("expected a request"); return }
        #expect(second[263] == "0" && second[265] == nil)
        let reject = FIXMessage(msgType: "Y", fields: [FIXField(262, secondKey), FIXField(281, "0"), FIXField(58, "no market data")])
        #expect(router.received(reject) == [.completed(key: secondKey, error: BrokerError(.permanent, "market data refused (0): no market data"))])
        guard case .sendOnly(let unsubscribe) = router.marketDataRequest(["GLD"], subscription: .unsubscribe) else {
            Issue.record("an unsubscribe expects no answer")
            return
        }
        #expect(unsubscribe[263] == "2")
        #expect(router.pendingCount == 0)
    }

    @Test func settingsFileAndOverrides() throws {
        let text = """
            # FillGuard's session with the broker
            [DEFAULT]
            ConnectionType=initiator
            [SESSION]
            BeginString=FIX.4.4
            SocketConnectHost = fix.example.net
            SocketConnectPort=9878
            SenderCompID=FILLGUARD
            TargetCompID=BROKER
            HeartBtInt=15
            FileStorePath=/var/lib/fillguard/fix
            Account=ACC-1\r
            """
        var settings = try FIXSettings.parse(text)
        #expect(settings.host == "fix.example.net" && settings.port == 9878 && settings.heartbeatInterval == 15)
        #expect(settings.account == "ACC-1" && settings.storePath == "/var/lib/fillguard/fix")
        #expect(settings.resetsOnLogon == false, "a store resumes the numbering")
        let configuration = try settings.brokerConfiguration(nativeModify: false)
        #expect(configuration.session.senderCompID == "FILLGUARD" && configuration.session.targetCompID == "BROKER")
        #expect(configuration.session.heartbeatInterval == 15 && !configuration.session.resetSeqNumOnLogon)
        #expect(configuration.application.account == "ACC-1" && !configuration.capabilities.nativeModify)
        try settings.set("ResetOnLogon", "Y")
        #expect(settings.session.resetSeqNumOnLogon)
        #expect(settings.storeSync == nil, "not set: the application decides")
        try settings.set("FileStoreSync", "Y")
        #expect(settings.storeSync == true)
        #expect(throws: FIXSettingsError("FileStoreSync must be Y or N, got \"maybe\"")) { try settings.set("FileStoreSync", "maybe") }
        #expect(FIXSettings().resetsOnLogon, "in memory: nothing to resume, so reset")
        #expect(throws: FIXSettingsError.self) { try FIXSettings().brokerConfiguration() }
        #expect(throws: FIXSettingsError("line 2: unknown setting SocketConnectPrt")) { try FIXSettings.parse("[SESSION]\nSocketConnectPrt=1") }
        #expect(throws: FIXSettingsError("line 1: SocketConnectPort must be a whole number in 1...65535, got \"x\"")) {
            try FIXSettings.parse("SocketConnectPort=x")
        }
        #expect(throws: FIXSettingsError("line 1: expected Key=Value, got \"HeartBtInt\"")) { try FIXSettings.parse("HeartBtInt") }
        // A second session would silently override the first's keys; a control character (SOH)
        // in a CompID or the account would break every message.
        #expect(throws: FIXSettingsError("line 3: a second [SESSION]: FillGuard runs one session per settings file; give each session a file of its own")) {
            try FIXSettings.parse("[SESSION]\nSenderCompID=A\n[SESSION]\nSenderCompID=B")
        }
        for key in ["SenderCompID", "TargetCompID", "Account"] {
            #expect(throws: FIXSettingsError.self) { try settings.set(key, "A\u{1}B") }
        }
        #expect(try FIXSettings.parse("[DEFAULT]\nHeartBtInt=5\n[SESSION]\nSenderCompID=A").senderCompID == "A")
        // ReconnectInterval caps the reconnect backoff (0.1 s doubling): 2 s here, 10 s by default.
        #expect(configuration.reconnect.maximumDelayNanoseconds == 10_000_000_000)
        try settings.set("ReconnectInterval", "2")
        let quick = try settings.brokerConfiguration().reconnect
        #expect(quick.maximumDelayNanoseconds == 2_000_000_000 && quick.delay(attempt: 10) == 2_000_000_000 && quick.delay(attempt: 1) == 100_000_000)
        #expect(throws: FIXSettingsError("ReconnectInterval must be a whole number in 1...3600, got \"0\"")) { try settings.set("ReconnectInterval", "0") }
    }

    @Test func groundTruthFindsEveryKindOfDifference() {
        func status(_ id: String, _ side: Side, _ type: String, cum: Quantity, leaves: Quantity, _ ordStatus: String = "1",
                    price: Price? = nil, stop: Price? = nil) -> FIXOrderStatus {
            FIXOrderStatus(orderID: OrderID(id), clOrdID: id, brokerOrderID: "B", symbol: "GLD", side: side, ordStatus: ordStatus,
                           cumulativeQuantity: cum, leavesQuantity: leaves, averagePrice: nil, ordType: type, price: price,
                           stopPrice: stop ?? (type == "3" ? Price("9") : nil))
        }
        let entry = OrderSnapshot(id: "R1-P-en0", positionID: "R1-P", symbol: "GLD", role: .entry, side: .buy, type: .market, quantity: 100,
                                  filledQuantity: 100, openQuantity: 0, averageFillPrice: Price("10"), status: .filled, failure: nil)
        let stop = OrderSnapshot(id: "R1-P-sl1", positionID: "R1-P", symbol: "GLD", role: .stopLoss, side: .sell, type: .stop(Price("9")!),
                                 quantity: 100, filledQuantity: 0, openQuantity: 100, averageFillPrice: nil, status: .working, failure: nil)
        let position = PositionSnapshot(id: "R1-P", symbol: "GLD", side: .buy, status: .open, netQuantity: 100, averagePrice: Price("10"),
                                        realizedPnL: .zero, commissions: .zero, orders: [entry, stop], stopLoss: Price("9"), takeProfit: nil)
        let agreeing = [status("R1-P-en0", .buy, "1", cum: 100, leaves: 0, "2"), status("R1-P-sl1", .sell, "3", cum: 0, leaves: 100, "0"),
                        status("R0-OLD-en0", .buy, "1", cum: 500, leaves: 0, "2")]
        #expect(FIXGroundTruth.problems([position], agreeing, orderPrefix: "R1-").isEmpty, "another run's orders do not count")
        #expect(FIXGroundTruth.problems([position], agreeing + agreeing, orderPrefix: "R1-").isEmpty, "an order listed twice counts once")
        let lostFill = [status("R1-P-en0", .buy, "1", cum: 150, leaves: 0, "2"), status("R1-P-sl1", .sell, "3", cum: 0, leaves: 100, "0")]
        let problems = FIXGroundTruth.problems([position], lostFill, orderPrefix: "R1-")
        #expect(problems.contains("GLD: broker net 150, FillGuard net 100"))
        #expect(problems.contains { $0.contains("a fill lost, counted twice") })
        #expect(problems.contains("GLD: stop R1-P-sl1 is sell 100, net is 150"))
        let twoStops = agreeing + [status("R1-P-sl9", .sell, "3", cum: 0, leaves: 100, "0")]
        let doubled = FIXGroundTruth.problems([position], twoStops, orderPrefix: "R1-")
        #expect(doubled.contains { $0.hasPrefix("GLD: 2 live stops at the broker") })
        #expect(doubled.contains("GLD: order R1-P-sl9 open 100 at the broker, not live in FillGuard"))
        let missing = FIXGroundTruth.problems([position], [agreeing[0]], orderPrefix: "R1-")
        #expect(missing.contains("order R1-P-sl1 live with 100 in FillGuard but not at the broker"))
        let misplaced = FIXGroundTruth.problems([position], [agreeing[0], status("R1-P-sl1", .sell, "3", cum: 0, leaves: 100, "0", stop: Price("8.5"))],
                                                orderPrefix: "R1-")
        #expect(misplaced == ["GLD: stop R1-P-sl1 is at 8.5, the position's stop-loss is 9"], "\(misplaced)")

        // A closed short: its entry (sell) filled 100, its stop (a buy) filled 100. Its target
        // (a buy limit) and a scale-in are still live at the broker: rule 5 is broken, though
        // the net is flat and nothing protective is on the sell side.
        func order(_ id: String, _ role: OrderRole, _ side: Side, _ type: OrderType, filled: Quantity, open: Quantity) -> OrderSnapshot {
            OrderSnapshot(id: OrderID(id), positionID: "R1-C", symbol: "GLD", role: role, side: side, type: type, quantity: filled + open,
                          filledQuantity: filled, openQuantity: open, averageFillPrice: filled.isZero ? nil : Price("10"),
                          status: open.isZero ? (filled.isZero ? .cancelled : .filled) : .working, failure: nil)
        }
        let closedOrders = [order("R1-C-en0", .entry, .sell, .market, filled: 100, open: 0), order("R1-C-si0", .scaleIn(0), .sell, .limit(Price("11")!), filled: 0, open: 0),
                            order("R1-C-sl1", .stopLoss, .buy, .stop(Price("12")!), filled: 100, open: 0),
                            order("R1-C-tp1", .takeProfit, .buy, .limit(Price("8")!), filled: 0, open: 0)]
        let closed = PositionSnapshot(id: "R1-C", symbol: "GLD", side: .sell, status: .closed, netQuantity: 0, averagePrice: nil,
                                      realizedPnL: .zero, commissions: .zero, orders: closedOrders, stopLoss: Price("12"), takeProfit: Price("8"))
        let settled = [status("R1-C-en0", .sell, "1", cum: 100, leaves: 0, "2"), status("R1-C-sl1", .buy, "3", cum: 100, leaves: 0, "2", stop: Price("12"))]
        #expect(FIXGroundTruth.problems([closed], settled, orderPrefix: "R1-").isEmpty, "\(FIXGroundTruth.problems([closed], settled, orderPrefix: "R1-"))")
        let leftOver = FIXGroundTruth.problems([closed], settled + [status("R1-C-tp1", .buy, "2", cum: 0, leaves: 100, "0", price: Price("8")),
                                                                     status("R1-C-si0", .sell, "2", cum: 0, leaves: 100, "0", price: Price("11"))], orderPrefix: "R1-")
        #expect(leftOver.contains("GLD: order R1-C-tp1 of closed position R1-C is live at the broker (buy 100)"), "\(leftOver)")
        #expect(leftOver.contains("GLD: order R1-C-si0 of closed position R1-C is live at the broker (sell 100)"), "\(leftOver)")
        #expect(leftOver.contains("GLD: flat but protective orders are live at the broker: [R1-C-tp1]"), "\(leftOver)")
        // The stop's fill booked to the entry: the totals agree, the orders do not.
        let swapped = [status("R1-C-en0", .sell, "1", cum: 100, leaves: 0, "2"), status("R1-C-sl1", .buy, "3", cum: 100, leaves: 0, "2", stop: Price("12"))]
        var wrongOrders = closedOrders
        wrongOrders[0].filledQuantity = 200
        wrongOrders[2].filledQuantity = 0
        var misbooked = closed
        misbooked.orders = wrongOrders
        let booked = FIXGroundTruth.problems([misbooked], swapped, orderPrefix: "R1-")
        #expect(booked.count == 1, "only the booking differs: \(booked)")
        #expect(booked.contains { $0.contains("booked to another order") && $0.contains("R1-C-en0 100 vs 200") && $0.contains("R1-C-sl1 100 vs 0") }, "\(booked)")

        // A pending short bracket: nothing filled, its entry and a scale-in (a sell limit, like a
        // flat long's target) working. Not a flat position with protective orders live.
        let shortEntry = OrderSnapshot(id: "R1-S-en0", positionID: "R1-S", symbol: "GLD", role: .entry, side: .sell, type: .limit(Price("10")!),
                                       quantity: 100, filledQuantity: 0, openQuantity: 100, averageFillPrice: nil, status: .working, failure: nil)
        let shortScaleIn = OrderSnapshot(id: "R1-S-si0", positionID: "R1-S", symbol: "GLD", role: .scaleIn(0), side: .sell, type: .limit(Price("11")!),
                                         quantity: 50, filledQuantity: 0, openQuantity: 50, averageFillPrice: nil, status: .working, failure: nil)
        let pending = PositionSnapshot(id: "R1-S", symbol: "GLD", side: .sell, status: .pending, netQuantity: 0, averagePrice: nil,
                                       realizedPnL: .zero, commissions: .zero, orders: [shortEntry, shortScaleIn], stopLoss: Price("12"), takeProfit: Price("8"))
        let working = [status("R1-S-en0", .sell, "2", cum: 0, leaves: 100, "0"), status("R1-S-si0", .sell, "2", cum: 0, leaves: 50, "0")]
        #expect(FIXGroundTruth.problems([pending], working, orderPrefix: "R1-").isEmpty, "\(FIXGroundTruth.problems([pending], working, orderPrefix: "R1-"))")
    }

    @Test("the FIX ground truth checks each open position of a symbol on its own, and follows the flipped-position cover")
    func groundTruthWithTwoOpenPositionsAndAFlip() {
        func status(_ id: String, _ side: Side, _ type: String, cum: Quantity, leaves: Quantity, _ ordStatus: String = "0") -> FIXOrderStatus {
            FIXOrderStatus(orderID: OrderID(id), clOrdID: id, brokerOrderID: "B", symbol: "GLD", side: side, ordStatus: ordStatus,
                           cumulativeQuantity: cum, leavesQuantity: leaves, averagePrice: nil, ordType: type)
        }
        func order(_ id: String, _ position: PositionID, _ role: OrderRole, _ side: Side, _ type: OrderType, quantity: Quantity, filled: Quantity) -> OrderSnapshot {
            OrderSnapshot(id: OrderID(id), positionID: position, symbol: "GLD", role: role, side: side, type: type, quantity: quantity,
                          filledQuantity: filled, openQuantity: quantity - filled, averageFillPrice: filled.isZero ? nil : Price("10"),
                          status: filled == quantity ? .filled : .working, failure: nil)
        }
        // A: a short bracket, long 300 after a late fill of its stop (flipped against it).
        let a = PositionSnapshot(id: "R1-A", symbol: "GLD", side: .sell, status: .open, netQuantity: 300, averagePrice: Price("10"),
                                 realizedPnL: .zero, commissions: .zero,
                                 orders: [order("R1-A-en1", "R1-A", .entry, .sell, .market, quantity: 300, filled: 300),
                                          order("R1-A-tp2", "R1-A", .takeProfit, .buy, .limit(Price("8")!), quantity: 300, filled: 300),
                                          order("R1-A-sl3", "R1-A", .stopLoss, .buy, .stop(Price("12")!), quantity: 300, filled: 300),
                                          order("R1-A-sl4", "R1-A", .stopLoss, .sell, .stop(Price("12")!), quantity: 300, filled: 0)],
                                 stopLoss: Price("12"), takeProfit: Price("8"))
        // B: a newer long bracket of 100, covered as usual.
        let b = PositionSnapshot(id: "R1-B", symbol: "GLD", side: .buy, status: .open, netQuantity: 100, averagePrice: Price("10"),
                                 realizedPnL: .zero, commissions: .zero,
                                 orders: [order("R1-B-en1", "R1-B", .entry, .buy, .market, quantity: 100, filled: 100),
                                          order("R1-B-sl2", "R1-B", .stopLoss, .sell, .stop(Price("9")!), quantity: 100, filled: 0),
                                          order("R1-B-tp3", "R1-B", .takeProfit, .sell, .limit(Price("11")!), quantity: 100, filled: 0)],
                                 stopLoss: Price("9"), takeProfit: Price("11"))
        let broker = [status("R1-A-en1", .sell, "1", cum: 300, leaves: 0, "2"), status("R1-A-tp2", .buy, "2", cum: 300, leaves: 0, "2"),
                      status("R1-A-sl3", .buy, "3", cum: 300, leaves: 0, "2"), status("R1-A-sl4", .sell, "3", cum: 0, leaves: 300),
                      status("R1-B-en1", .buy, "1", cum: 100, leaves: 0, "2"), status("R1-B-sl2", .sell, "3", cum: 0, leaves: 100),
                      status("R1-B-tp3", .sell, "2", cum: 0, leaves: 100)]
        #expect(a.isFlippedAgainstBracket && !b.isFlippedAgainstBracket)
        let stopOnly = FIXGroundTruth.problems([a, b], broker, orderPrefix: "R1-", cover: .stopLossOnly)
        #expect(stopOnly.isEmpty, "each position covered as it should be: \(stopOnly)")
        let bracket = FIXGroundTruth.problems([a, b], broker, orderPrefix: "R1-", cover: .bracket)
        #expect(bracket.contains { $0.hasPrefix("GLD R1-A (net 300): takeProfit at the broker is []") }, "\(bracket)")
        #expect(bracket.count == 1, "\(bracket)")
    }
}
