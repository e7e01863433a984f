import FillGuard
import FillGuardCore
import Foundation
import Testing

/// Replays of the checked-in traces (Tests/FillGuardTests/Traces), with expectations computed by hand.
@Suite("Replay of trace files")
struct ReplayTests {
    static let traces = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Traces")

    private func replay(_ name: String, _ options: ReplayOptions = ReplayOptions()) throws -> ReplayReport {
        let text = try String(contentsOf: Self.traces.appendingPathComponent(name), encoding: .utf8)
        return TraceReplayer.replay(text, options: options)
    }

    private func live(_ report: ReplayReport, _ role: OrderRole) -> OrderSnapshot? {
        report.positions.first?.liveOrder(role)
    }

    @Test("the brief's example: 300 + 120 scale-in, stop fills 100")
    func briefExample() throws {
        let report = try replay("brief-example.jsonl")
        let position = try #require(report.positions.first)
        #expect(position.status == .open)
        #expect(position.netQuantity == 320)
        #expect(position.averagePrice == Price("247.5")) // (300*248.10 + 120*246) / 420
        #expect(position.realizedPnL == Money("-250")) // 100 * (245 - 247.5)
        #expect(live(report, .stopLoss)?.openQuantity == 320)
        #expect(live(report, .takeProfit)?.openQuantity == 320)
        #expect(live(report, .takeProfit)?.side == .sell)
        #expect(live(report, .scaleIn(0))?.openQuantity == 180)
        #expect(report.rejected.isEmpty && report.violations.isEmpty)
        #expect(report.operations == [.submit: 4, .modify: 3]) // entry, scale-in, stop, target; 2 up, 1 down
    }

    @Test("long lifecycle: partial entries, scale-in, partial target, stop closes, target cancelled")
    func longLifecycle() throws {
        let report = try replay("long-lifecycle.jsonl")
        let position = try #require(report.positions.first)
        #expect(position.status == .closed)
        #expect(position.netQuantity == 0)
        #expect(position.liveOrders.isEmpty)
        // Average 197.8 after the scale-in; target 50 @ 210 makes +610; stop 150 @ 190 makes -1170.
        #expect(position.realizedPnL == Money("-560"))
        #expect(report.operations == [.submit: 4, .modify: 5, .cancel: 1])
    }

    @Test("short lifecycle: stop partial fill resizes the target")
    func shortLifecycle() throws {
        let report = try replay("short-lifecycle.jsonl")
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == -150)
        #expect(position.averagePrice == Price("250.83333333")) // 60200 / 240
        #expect(position.realizedPnL == Money("-825")) // 22575 released, 23400 paid
        #expect(live(report, .stopLoss)?.side == .buy)
        #expect(live(report, .stopLoss)?.openQuantity == 150)
        #expect(live(report, .takeProfit)?.openQuantity == 150)
        #expect(live(report, .takeProfit)?.type == .limit(Price("230")!))
    }

    @Test("every kind of invalid line is refused with its code; processing goes on")
    func invalidInputs() throws {
        let report = try replay("invalid-inputs.jsonl")
        let codes = report.rejected.map { "\($0.line):\($0.error.code.rawValue)" }
        #expect(codes == [
            "3:duplicateExecution", "4:unknownPosition", "5:unknownOrder", "6:invalidQuantity", "7:invalidQuantity",
            "8:invalidPrice", "9:overfill", "10:cumulativeWentBackwards", "11:symbolMismatch", "12:sideMismatch",
            "13:malformed", "14:malformed", "15:malformed", "16:positionExists", "17:positionExists", "18:invalidBracket",
            "19:invalidQuantity", "22:invalidQuantity",
        ])
        let position = try #require(report.positions.first)
        #expect(report.positions.count == 1)
        #expect(position.netQuantity == 150, "only E1 and E13 counted")
        #expect(live(report, .stopLoss)?.openQuantity == 150)
        #expect(report.violations.isEmpty)
    }

    @Test("rule 7: too late to cancel, the late fill counts and the reopened position is protected")
    func lateFillAfterCancel() throws {
        let report = try replay("late-fill-after-cancel.jsonl")
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == -30)
        #expect(position.status == .open)
        #expect(live(report, .stopLoss)?.side == .buy)
        #expect(live(report, .stopLoss)?.openQuantity == 30)
        #expect(live(report, .stopLoss)?.type.displayPrice == Price("495"))
        #expect(report.violations.isEmpty)
    }

    @Test("transient faults are retried; a permanent one is alerted and excluded, not hidden")
    func faults() throws {
        let report = try replay("faults.jsonl")
        #expect(live(report, .stopLoss)?.openQuantity == 200)
        #expect(live(report, .takeProfit)?.openQuantity == 150, "its modify was refused for good")
        #expect(report.alerts.count == 1)
        #expect(report.alerts.first?.role == .takeProfit)
        #expect(report.operations[.modify] == 6)
        #expect(report.violations.isEmpty)
    }

    @Test("timeouts: a stop whose submits all timed out is cancelled to settle and alerted; the next fill re-protects")
    func timeouts() throws {
        let report = try replay("timeouts.jsonl")
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == 200)
        let stop = try #require(live(report, .stopLoss))
        #expect(stop.openQuantity == 200 && stop.id != "P1-sl3", "a new stop, not the one whose outcome was unknown")
        #expect(live(report, .takeProfit)?.openQuantity == 200)
        #expect(report.alerts.map(\.role) == [.stopLoss])
        #expect(report.operations[.submit] == 7 && report.operations[.cancel] == 1 && report.operations[.modify] == 2,
                "\(report.operations)")
        #expect(report.violations.isEmpty)
    }

    @Test("no native modify: resizes by cancel-then-create")
    func noModify() throws {
        let report = try replay("no-modify.jsonl", ReplayOptions(nativeModify: false))
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == -120)
        #expect(position.realizedPnL == Money("350"))
        #expect(live(report, .stopLoss)?.openQuantity == 120)
        #expect(live(report, .takeProfit)?.openQuantity == 120)
        #expect(report.operations == [.submit: 7, .cancel: 3])
    }

    @Test("the JSON follows the contract: field names, types, live orders only")
    func jsonContract() throws {
        let report = try replay("long-lifecycle.jsonl")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any])
        #expect(Set(json.keys) == ["positions", "rejected", "brokerOperations"])
        let position = try #require((json["positions"] as? [[String: Any]])?.first)
        #expect(Set(position.keys) == ["position", "symbol", "status", "netQuantity", "averagePrice", "realizedPnL", "orders"])
        #expect(position["status"] as? String == "closed")
        #expect(position["netQuantity"] as? String == "0")
        #expect(position["averagePrice"] as? String == "0")
        #expect(position["realizedPnL"] as? String == "-560")
        #expect((position["orders"] as? [Any])?.isEmpty == true)
        let operations = try #require(json["brokerOperations"] as? [String: Int])
        #expect(operations == ["submit": 4, "modify": 5, "cancel": 1])

        let brief = try replay("brief-example.jsonl")
        let briefJSON = try #require(try JSONSerialization.jsonObject(with: Data(brief.json.utf8)) as? [String: Any])
        let orders = try #require((briefJSON["positions"] as? [[String: Any]])?.first?["orders"] as? [[String: Any]])
        #expect(orders.count == 3)
        for order in orders {
            #expect(Set(order.keys) == ["role", "index", "side", "openQuantity", "price", "status"])
        }
        #expect(orders[0]["index"] as? Int == 0)
        #expect(orders[1]["index"] is NSNull)
        #expect(orders[1]["price"] as? String == "245")

        let invalid = try replay("invalid-inputs.jsonl")
        let invalidJSON = try #require(try JSONSerialization.jsonObject(with: Data(invalid.json.utf8)) as? [String: Any])
        let rejected = try #require(invalidJSON["rejected"] as? [[String: Any]])
        #expect(rejected.first?["line"] as? Int == 3)
        #expect(rejected.first?["error"] as? String == "duplicateExecution")
        #expect((rejected.first?["message"] as? String)?.isEmpty == false)
    }

    @Test("Windows line endings and blank lines are fine; line numbers count physical lines")
    func crlf() {
        let text = "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"X\",\"side\":\"sell\",\"quantity\":\"10\",\"stopLoss\":\"11\",\"takeProfit\":\"9\"}\r\n\r\n"
            + "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"10\",\"price\":\"10\",\"execId\":\"1\"}\r\n"
            + "oops\r\n"
        let report = TraceReplayer.replay(text)
        #expect(report.positions.first?.netQuantity == -10)
        #expect(report.positions.first?.liveOrder(.stopLoss)?.side == .buy)
        #expect(report.rejected.map(\.line) == [4])
    }
}
