import FillGuard
import FillGuardCore
import Foundation
import Testing

/// Replays of the checked-in traces (Tests/FillGuardTests/Traces), with expectations computed by hand.
@Suite("Replay of trace files", .timeLimit(.minutes(5)))
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
        #expect(report.operations == [.submit: 4, .modify: 5]) // entry, scale-in, stop, target; 2 up, 1 down in 3 tries (2 scripted faults)
        #expect(report.unusedFaults.isEmpty)
    }

    @Test("a refused scale-in the broker fills after the position flipped is cancelled, not kept live on the flipped position")
    func refusedScaleInFilledAfterAFlip() throws {
        let report = try replay("refused-scale-in-filled-after-flip.jsonl")
        let position = try #require(report.positions.first)
        // Long 100; the target fills 100 (flat) and then the stop 100 (its cancel too late): short
        // 100. The scale-in, refused at first, then fills 20 of its 50: short 80.
        #expect(position.netQuantity == -80)
        #expect(live(report, .scaleIn(0)) == nil, "a buy limit for 30 beside a buy stop for 80 could leave the account long: \(position.liveOrders)")
        #expect(live(report, .stopLoss)?.openQuantity == 80 && live(report, .stopLoss)?.side == .buy)
        #expect(report.violations.isEmpty && report.rejected.isEmpty)
    }

    @Test("a target whose resize down is refused is cancelled and replaced at the position's size: it never over-sells")
    func refusedReduction() throws {
        let report = try replay("refused-reduction.jsonl")
        let position = try #require(report.positions.first)
        // Entry 20, stop fills 5: the target (20) must shrink to 15; the modify is refused, so it is
        // cancelled and a target of 15 placed. That target's fill of 15 closes the position flat.
        #expect(position.status == .closed)
        #expect(position.netQuantity == 0)
        #expect(position.liveOrders.isEmpty)
        #expect(position.realizedPnL == Money("25")) // 5 * (9 - 10) + 15 * (12 - 10)
        #expect(report.alerts.count == 1 && report.alerts.first?.kind == .operationFailed)
        #expect(report.operations == [.submit: 4, .modify: 1, .cancel: 3]) // entry, stop, target, new target; refused modify; old target, stop, entry remainder
        #expect(report.rejected.isEmpty && report.violations.isEmpty)
    }

    @Test("a fill naming a role goes to the role's live order: here the old stop, kept when its cancel was refused, not its cancelled replacement")
    func fillNamesTheRolesLiveOrder() throws {
        let report = try replay("kept-old-stop.jsonl", ReplayOptions(nativeModify: false, strategy: .createThenCancel))
        let position = try #require(report.positions.first)
        // Long 100 @ 10; the target sells 60 @ 12, so the stop should come down to 40: a new stop of
        // 40 is created, the old one's cancel is refused, so the new one is cancelled and the old
        // one (100) stays the role's order. It then fills 100 @ 9: long 40 to short 60.
        #expect(report.rejected.isEmpty, "\(report.rejected)")
        #expect(position.netQuantity == -60)
        #expect(position.realizedPnL == Money("80")) // 60 * (12 - 10) + 40 * (9 - 10)
        #expect(position.averagePrice == Price("9"))
        #expect(live(report, .stopLoss)?.side == .buy && live(report, .stopLoss)?.openQuantity == 60)
        #expect(live(report, .takeProfit)?.side == .buy && live(report, .takeProfit)?.openQuantity == 60)
        #expect(report.alerts.map(\.kind) == [.operationFailed, .positionFlipped])
        #expect(report.operations == [.submit: 6, .cancel: 3])
        #expect(report.violations.isEmpty)
    }

    @Test("a repeated execution id is a duplicate however many fills came between (a replay remembers them all)")
    func duplicateLongAfter() {
        var lines = [#"{"type":"open","position":"P1","symbol":"S","side":"buy","quantity":"5000","stopLoss":"9","takeProfit":"12"}"#]
        for index in 1...2_100 { lines.append(#"{"type":"fill","position":"P1","role":"entry","quantity":"1","price":"10","execId":"E\#(index)"}"#) }
        lines.append(#"{"type":"fill","position":"P1","role":"entry","quantity":"1","price":"10","execId":"E1"}"#)
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.positions.first?.netQuantity == 2_100)
        #expect(report.rejected.map(\.line) == [2_102])
        #expect(report.rejected.first?.error.code == .duplicateExecution)
    }

    @Test("a repeated fill of a stop that was replaced since is a plain repeat of the old stop's fill; the id reused for another role's fill is refused and alerted")
    func repeatAfterReplacement() {
        let trace = #"""
        {"type":"open","position":"P1","symbol":"GLD","side":"buy","quantity":"300","stopLoss":"245","takeProfit":"250"}
        {"type":"fill","position":"P1","role":"entry","quantity":"100","price":"248","execId":"E1"}
        {"type":"fill","position":"P1","role":"stopLoss","quantity":"50","price":"245","execId":"E2"}
        {"type":"fill","position":"P1","role":"entry","quantity":"100","price":"248","execId":"E3"}
        {"type":"fill","position":"P1","role":"stopLoss","quantity":"50","price":"245","execId":"E2"}
        {"type":"fill","position":"P1","role":"takeProfit","quantity":"20","price":"250","execId":"E2"}
        """#
        let report = TraceReplayer.replay(trace, options: ReplayOptions(nativeModify: false))
        #expect(report.positions.first?.netQuantity == 150)
        #expect(report.rejected.map(\.line) == [5, 6])
        #expect(report.rejected.first?.error.message == "execution E2 was already applied; the repeat is ignored")
        #expect(report.rejected.last?.error.message.contains("so it is no repeat") == true, "\(report.rejected)")
        #expect(report.alerts.map(\.kind) == [.fillRefused], "only the reused id is alerted: \(report.alerts)")
        #expect(report.alerts.first?.role == .takeProfit)
    }

    @Test("fills a report's cumulative quantity announced: alerted at the end when their reports never came; not when an earlier report came late")
    func announcedFillsAtTheEnd() {
        let opened = #"{"type":"open","position":"P1","symbol":"IBM","side":"buy","quantity":"100","stopLoss":"95","takeProfit":"110"}"#
        let entry = #"{"type":"fill","position":"P1","role":"entry","quantity":"100","price":"100","execId":"E1","cumQuantity":"100"}"#
        let late = #"{"type":"fill","position":"P1","role":"stopLoss","quantity":"20","price":"95","execId":"E3","cumQuantity":"100","leavesQuantity":"0"}"#
        let early = #"{"type":"fill","position":"P1","role":"stopLoss","quantity":"80","price":"95","execId":"E2","cumQuantity":"80","leavesQuantity":"20"}"#
        let lost = TraceReplayer.replay([opened, entry, late].joined(separator: "\n"))
        #expect(lost.positions.first?.netQuantity == 80)
        #expect(lost.alerts.map(\.kind) == [.fillsOverdue], "\(lost.alerts)")
        #expect(lost.alerts.first?.message.hasSuffix("filled, 20 booked: the reports of 80 have not come; the position counts only the fills reported") == true)
        let reordered = TraceReplayer.replay([opened, entry, late, early].joined(separator: "\n"))
        #expect(reordered.positions.first?.status == .closed && reordered.positions.first?.liveOrders.isEmpty == true)
        #expect(reordered.alerts.isEmpty, "\(reordered.alerts)")
        #expect(reordered.rejected.isEmpty)
    }

    @Test("in a replay an execution id booked to one role, repeated on another role's fill, is no repeat whatever its quantity: refused and alerted")
    func reusedIDOnAnotherRole() {
        let trace = #"""
        {"type":"open","position":"P1","symbol":"GLD","side":"buy","quantity":"300","stopLoss":"245","takeProfit":"250"}
        {"type":"fill","position":"P1","role":"entry","quantity":"300","price":"248","execId":"E1"}
        {"type":"fill","position":"P1","role":"stopLoss","quantity":"100","price":"245","execId":"E3"}
        {"type":"fill","position":"P1","role":"takeProfit","quantity":"100","price":"250","execId":"E4"}
        {"type":"fill","position":"P1","role":"takeProfit","quantity":"100","price":"250","execId":"E3"}
        {"type":"fill","position":"P1","role":"takeProfit","quantity":"100","price":"250","execId":"E4"}
        """#
        let report = TraceReplayer.replay(trace)
        #expect(report.positions.first?.netQuantity == 100)
        #expect(report.rejected.map(\.line) == [5, 6])
        #expect(report.rejected.first?.error.message == "execution E3 was already applied, to stopLoss P1-sl2 of position P1, not to a fill of takeProfit of P1, so it is no repeat (the id reused?); refused")
        #expect(report.rejected.last?.error.message == "execution E4 was already applied; the repeat is ignored")
        #expect(report.alerts.map(\.kind) == [.fillRefused] && report.alerts.first?.role == .takeProfit, "\(report.alerts)")
    }

    @Test("a fill line goes to the order waiting for announced fills only when it fits in them; a larger one goes to the role's live order")
    func announcedFillsTakeOnlyWhatFits() {
        let trace = #"""
        {"type":"open","position":"P1","symbol":"GLD","side":"buy","quantity":"300","stopLoss":"245","takeProfit":"250","scaleIns":[{"quantity":"300","limit":"246"}]}
        {"type":"fill","position":"P1","role":"entry","quantity":"300","price":"248","execId":"E1","cumQuantity":"300"}
        {"type":"fill","position":"P1","role":"stopLoss","quantity":"50","price":"245","execId":"S2","cumQuantity":"100"}
        {"type":"fill","position":"P1","role":"scaleIn","index":0,"quantity":"300","price":"246","execId":"X1","cumQuantity":"300"}
        {"type":"fill","position":"P1","role":"stopLoss","quantity":"300","price":"245","execId":"S3","cumQuantity":"300"}
        """#
        let report = TraceReplayer.replay(trace, options: ReplayOptions(nativeModify: false))
        #expect(report.rejected.isEmpty, "\(report.rejected)")
        #expect(report.positions.first?.netQuantity == 250)
        #expect(report.positions.first?.liveOrder(.stopLoss)?.openQuantity == 250)
        #expect(report.alerts.map(\.kind) == [.fillsOverdue], "the old stop's 50 never came: \(report.alerts)")
    }

    @Test("execution ids are compared byte for byte: canonically equivalent texts are two fills, not a repeat")
    func executionIDsAreBytes() {
        let trace = #"""
        {"type":"open","position":"P1","symbol":"S","side":"buy","quantity":"100","stopLoss":"9","takeProfit":"12"}
        {"type":"fill","position":"P1","role":"entry","quantity":"10","price":"10","execId":"\u00e9"}
        {"type":"fill","position":"P1","role":"entry","quantity":"10","price":"10","execId":"e\u0301"}
        {"type":"fill","position":"P1","role":"entry","quantity":"10","price":"10","execId":"e\u0301"}
        """#
        let report = TraceReplayer.replay(trace)
        #expect(report.positions.first?.netQuantity == 20, "two fills with different execution ids")
        #expect(report.rejected.map(\.line) == [4], "the exact repeat is refused")
    }

    @Test("a commission that is not a decimal, or beyond any real one, is refused as invalidCommission; a rebate is taken")
    func commissions() {
        let trace = #"""
        {"type":"open","position":"P1","symbol":"S","side":"buy","quantity":"100","stopLoss":"9","takeProfit":"12"}
        {"type":"fill","position":"P1","role":"entry","quantity":"10","price":"10","execId":"E1","commission":"NaN"}
        {"type":"fill","position":"P1","role":"entry","quantity":"10","price":"10","execId":"E2","commission":"1000000000001"}
        {"type":"fill","position":"P1","role":"entry","quantity":"10","price":"10","execId":"E3","commission":"-0.25"}
        """#
        let report = TraceReplayer.replay(trace)
        #expect(report.rejected.map(\.line) == [2, 3])
        #expect(report.rejected.allSatisfy { $0.error.code == .invalidCommission }, "\(report.rejected)")
        #expect(report.positions.first?.netQuantity == 10)
        #expect(report.positions.first?.commissions == Money("-0.25"))
    }

    /// A long of 100 whose stop's next modify is answered "too late" (the stop filled, says the broker).
    private static let stopAnsweredTooLate = #"""
    {"type":"open","position":"P","symbol":"AAA","side":"buy","quantity":"100","stopLoss":"90","takeProfit":"120"}
    {"type":"fill","position":"P","role":"entry","quantity":"100","price":"100","execId":"1"}
    {"type":"brokerFault","operation":"modify","count":1,"kind":"tooLate","position":"P","role":"stopLoss"}

    """#

    @Test("a stop waiting for fills the broker announced ('too late'), its tries used up, is asked once more to come down when the position shrinks below it")
    func awaitingOrderIsAskedToComeDown() throws {
        let trace = Self.stopAnsweredTooLate + #"""
        {"type":"fill","position":"P","role":"takeProfit","quantity":"40","price":"120","execId":"2"}
        {"type":"fill","position":"P","role":"takeProfit","quantity":"20","price":"120","execId":"3"}
        """#
        let report = TraceReplayer.replay(trace, options: ReplayOptions(maxAttempts: 1))
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == 40)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 40, "not left at 100 over a position of 40: \(report.text)")
        #expect(report.operations[.modify] == 2, "the modify to 60 (too late), then the one to 40")
        #expect(report.alerts.contains { $0.kind == .fillsOverdue })
        // Asked once per shrink: a broker that answers "too late" again leaves it waiting, no loop.
        let again = TraceReplayer.replay(trace.replacingOccurrences(of: #""count":1"#, with: #""count":5"#), options: ReplayOptions(maxAttempts: 1))
        #expect(again.operations[.modify] == 2 && again.positions.first?.liveOrder(.stopLoss)?.status == .awaitingFills, "\(again.text)")
    }

    @Test("a stop waiting for fills the broker announced ('too late'), its tries used up, is asked once to cancel when the position goes flat")
    func awaitingOrderIsAskedToCancelWhenFlat() throws {
        let targetFillsAll = #"""
        {"type":"fill","position":"P","role":"takeProfit","quantity":"40","price":"120","execId":"2"}
        {"type":"fill","position":"P","role":"takeProfit","quantity":"60","price":"120","execId":"3"}
        """#
        let trace = Self.stopAnsweredTooLate + targetFillsAll
        let report = TraceReplayer.replay(trace, options: ReplayOptions(maxAttempts: 1))
        let position = try #require(report.positions.first)
        #expect(position.status == .closed)
        #expect(position.liveOrders.isEmpty, "no stop of 100 left live on a flat position: \(report.text)")
        #expect(report.operations[.cancel] == 1 && report.operations[.modify] == 1, "\(report.text)")
        // Asked once: a broker that answers the cancel "too late" too leaves the stop waiting, no loop.
        let faultFirst = Self.stopAnsweredTooLate + #"""
        {"type":"brokerFault","operation":"cancel","count":5,"kind":"tooLate","position":"P","role":"stopLoss"}

        """# + targetFillsAll
        let waiting = TraceReplayer.replay(faultFirst, options: ReplayOptions(maxAttempts: 1))
        #expect(waiting.operations[.cancel] == 1 && waiting.positions.first?.liveOrder(.stopLoss)?.status == .awaitingFills, "\(waiting.text)")
    }

    @Test("while a stop waits for a 'too late''s fills, the role's other stop covers the position less what the waiting one may hold: never both in full (QA fuzz)")
    func roleCoverLeavesOutTheWaitingOrder() throws {
        // A short of 42; its stop's resize up to 49 is refused, so a stop of 49 replaces it, and
        // the old one's cancel is answered "too late" (it filled, says the broker) every time.
        let trace = #"""
        {"type":"open","position":"P1","symbol":"S","side":"sell","quantity":"100","stopLoss":"110","takeProfit":"90"}
        {"type":"fill","position":"P1","role":"entry","quantity":"42","price":"100","execId":"X1"}
        {"type":"brokerFault","operation":"modify","count":1,"kind":"permanent","position":"P1","role":"stopLoss"}
        {"type":"brokerFault","operation":"cancel","count":3,"kind":"tooLate","position":"P1","role":"stopLoss"}
        {"type":"fill","position":"P1","role":"entry","quantity":"7","price":"100","execId":"X2"}
        """#
        let report = TraceReplayer.replay(trace)
        let stops = try #require(report.positions.first).liveOrders.filter { $0.role == .stopLoss }
        #expect(report.positions.first?.netQuantity == -49)
        // Filled (the answer is right): the short is 7 once its fills come, and the new stop is 7.
        // Live (wrong): 42 + 7 cover the 49. Before: 42 + 49 = 91 shares of buy stop.
        #expect(stops.map(\.openQuantity) == [Quantity("42")!, Quantity("7")!] && stops.map(\.status) == [.awaitingFills, .working], "\(report.text)")
        // The position shrinks below what the waiting stop may hold: the other stop goes.
        let shrunk = TraceReplayer.replay(trace + "\n" + #"{"type":"fill","position":"P1","role":"takeProfit","quantity":"9","price":"90","execId":"X3"}"#)
        #expect(shrunk.positions.first?.liveOrders.filter { $0.role == .stopLoss }.map(\.status) == [.awaitingFills], "\(shrunk.text)")
        // The other stop's resize down (7 to 4, for a short of 46) is refused: beside the waiting
        // 42 it over-covers, so it is cancelled, as one larger than the position is.
        let refused = TraceReplayer.replay(trace + "\n" + #"""
        {"type":"brokerFault","operation":"modify","count":1,"kind":"permanent","position":"P1","role":"stopLoss"}
        {"type":"fill","position":"P1","role":"takeProfit","quantity":"3","price":"90","execId":"X3"}
        """#)
        #expect(refused.positions.first?.liveOrders.filter { $0.role == .stopLoss }.map(\.status) == [.awaitingFills], "\(refused.text)")
        #expect(refused.alerts.contains { $0.message.contains("it covers 7 of 46, beside 42 that an order waiting for its fills may hold, so it is cancelled") },
                "\(refused.text)")
    }

    @Test("a brokerFault of kind notSent: the stop's resize is held through it and goes as a modify, alerted once; an entry's submit uses its tries")
    func notSentFaultInATrace() throws {
        let trace = #"""
        {"type":"open","position":"P1","symbol":"S","side":"buy","quantity":"100","stopLoss":"95","takeProfit":"110","scaleIns":[{"quantity":"100","type":"limit","price":"98"}]}
        {"type":"fill","position":"P1","role":"entry","quantity":"100","price":"100","execId":"X1"}
        {"type":"brokerFault","operation":"modify","count":7,"kind":"notSent","position":"P1","role":"stopLoss"}
        {"type":"fill","position":"P1","role":"scaleIn","index":0,"quantity":"100","price":"98","execId":"X2"}
        """#
        let report = TraceReplayer.replay(trace)
        let position = try #require(report.positions.first)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 200 && position.liveOrder(.takeProfit)?.openQuantity == 200, "\(report.text)")
        #expect(report.alerts.map(\.kind) == [.operationHeld], "\(report.text)")
        #expect(report.operations[.modify] == 2 + 7, "the target's modify, seven unsent tries of the stop's, then the stop's: \(report.text)")
        let entry = TraceReplayer.replay(#"""
        {"type":"brokerFault","operation":"submit","count":3,"kind":"notSent","position":"P1","role":"entry"}
        {"type":"open","position":"P1","symbol":"S","side":"buy","quantity":"100","stopLoss":"95","takeProfit":"110"}
        """#)
        #expect(entry.alerts.map(\.kind) == [.entryRejected], "\(entry.text)")
    }

    @Test("an order the broker refused and then fills all the same is held live again with the rest of its size, and cancelled at flat")
    func refusedOrderThatFillsIsTrackedAgain() throws {
        let scaleIn = #"""
        {"type":"brokerFault","operation":"submit","count":1,"kind":"permanent","position":"P","role":"scaleIn","index":0}
        {"type":"open","position":"P","symbol":"AAA","side":"buy","quantity":"100","stopLoss":"90","takeProfit":"120","scaleIns":[{"quantity":"50","limit":"95"}]}
        {"type":"fill","position":"P","role":"entry","quantity":"100","price":"100","execId":"1"}
        {"type":"fill","position":"P","role":"scaleIn","index":0,"quantity":"20","price":"95","execId":"2"}
        """#
        let report = TraceReplayer.replay(scaleIn)
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == 120)
        #expect(position.liveOrder(.scaleIn(0))?.openQuantity == 30, "the rest of the refused scale-in is tracked: \(report.text)")
        #expect(report.alerts.contains { $0.kind == .refusedOrderFilled && $0.role == .scaleIn(0) }, "\(report.text)")
        // Flat: the scale-in's rest is cancelled with the stop.
        let flat = TraceReplayer.replay(scaleIn + "\n" + #"{"type":"fill","position":"P","role":"takeProfit","quantity":"120","price":"120","execId":"3"}"#)
        #expect(flat.positions.first?.status == .closed && flat.positions.first?.liveOrders.isEmpty == true, "\(flat.text)")
        #expect(flat.operations[.cancel] == 2, "the stop and the scale-in's rest: \(flat.text)")

        // A refused stop that fills: one stop covers the position, the refused one's rest, not a second beside it.
        let stop = TraceReplayer.replay(#"""
        {"type":"brokerFault","operation":"submit","count":1,"kind":"permanent","position":"P","role":"stopLoss"}
        {"type":"open","position":"P","symbol":"AAA","side":"buy","quantity":"100","stopLoss":"90","takeProfit":"120"}
        {"type":"fill","position":"P","role":"entry","quantity":"100","price":"100","execId":"1"}
        {"type":"fill","position":"P","role":"stopLoss","quantity":"40","price":"90","execId":"2"}
        """#)
        let stopped = try #require(stop.positions.first)
        #expect(stopped.netQuantity == 60)
        #expect(stopped.liveOrders.filter { $0.role == .stopLoss }.map(\.openQuantity) == [Quantity("60")!], "\(stop.text)")
        #expect(stopped.liveOrder(.takeProfit)?.openQuantity == 60)
        #expect(stop.operations[.submit] == 3, "entry, stop, target: no second stop submitted beside the refused one's rest: \(stop.text)")
    }

    @Test("a fill of an order FillGuard never placed (a scale-in cancelled unsent when its entry was refused) is booked and alerted; a late fill of a placed order is not")
    func unplacedOrderThatFillsIsAlerted() throws {
        let refusedEntry = TraceReplayer.replay(#"""
        {"type":"brokerFault","operation":"submit","count":1,"kind":"permanent","position":"P","role":"entry"}
        {"type":"open","position":"P","symbol":"AAA","side":"buy","quantity":"100","stopLoss":"90","takeProfit":"110","scaleIns":[{"quantity":"50","limit":"95"}]}
        {"type":"fill","position":"P","role":"scaleIn","index":0,"quantity":"50","price":"95","execId":"X2"}
        """#)
        let position = try #require(refusedEntry.positions.first)
        #expect(position.netQuantity == 50, "the broker says it traded: booked \(refusedEntry.text)")
        #expect(refusedEntry.alerts.contains { $0.kind == .unplacedOrderFilled && $0.role == .scaleIn(0) }, "\(refusedEntry.text)")
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 50 && position.liveOrder(.takeProfit)?.openQuantity == 50,
                "the position it opened is protected: \(refusedEntry.text)")

        // A scale-in the broker held, cancelled at flat, that fills late: a trade of an order it had.
        let late = TraceReplayer.replay(#"""
        {"type":"open","position":"P","symbol":"AAA","side":"buy","quantity":"100","stopLoss":"90","takeProfit":"110","scaleIns":[{"quantity":"50","limit":"95"}]}
        {"type":"fill","position":"P","role":"entry","quantity":"100","price":"100","execId":"1"}
        {"type":"fill","position":"P","role":"takeProfit","quantity":"100","price":"110","execId":"2"}
        {"type":"fill","position":"P","role":"scaleIn","index":0,"quantity":"50","price":"95","execId":"3"}
        """#)
        #expect(late.positions.first?.netQuantity == 50, "\(late.text)")
        #expect(!late.alerts.contains { $0.kind == .unplacedOrderFilled }, "\(late.text)")
    }

    @Test("the text output names each order's type: a stop-limit scale-in does not read as a limit")
    func textNamesOrderTypes() {
        let trace = #"""
        {"type":"open","position":"P1","symbol":"GLD","side":"buy","quantity":"300","stopLoss":"245","takeProfit":"250","scaleIns":[{"quantity":"100","limit":"246"},{"quantity":"100","stop":"251","limit":"251.5"}]}
        {"type":"fill","position":"P1","role":"entry","quantity":"300","price":"248.1","execId":"E1"}
        """#
        let lines = TraceReplayer.replay(trace).text.split(separator: "\n").map(String.init)
        #expect(lines.contains("    scaleIn[0] buy 100 @ 246 (limit) working"), "\(lines)")
        #expect(lines.contains("    scaleIn[1] buy 100 @ 251 (stop, limit 251.5) working"), "\(lines)")
        #expect(lines.contains("    stopLoss sell 300 @ 245 (stop) working") && lines.contains("    takeProfit sell 300 @ 250 (limit) working"), "\(lines)")
    }

    @Test("the text output shows control and invisible characters from a trace escaped: an id cannot forge a line")
    func textEscapesControlCharacters() {
        let trace = #"{"type":"open","position":"P1\nP9 S open: net 1000","symbol":"S","side":"buy","quantity":"100","stopLoss":"9","takeProfit":"12"}"#
        let text = TraceReplayer.replay(trace).text
        #expect(text.contains(#"malformed: position id "P1\nP9 S open: net 1000" contains a control character"#), "refused, and shown escaped: \(text)")
        #expect(!text.contains("\nP9"))
        // A symbol with a control character is refused, and the refusal shows it escaped.
        let terminal = TraceReplayer.replay(#"{"type":"open","position":"P1","symbol":"S\u001b[2J","side":"buy","quantity":"100"}"#).text
        #expect(terminal.contains(#"malformed: symbol "S\u{1B}[2J" contains a control character"#), "\(terminal)")
        #expect(!terminal.contains("\u{1B}"))
        let bidi = TraceReplayer.replay(#"{"type":"open","position":"P\u202e1","symbol":"S","side":"buy","quantity":"100"}"#).text
        #expect(bidi.hasPrefix(#"rejected line 1: malformed: position id "P\u{202E}1" contains an invisible character (U+202E)"#), "\(bidi)")
        let invisible = TraceReplayer.replay(#"{"type":"open","position":"P\u200b1","symbol":"S","side":"buy","quantity":"100"}"#).text
        #expect(invisible.hasPrefix(#"rejected line 1: malformed: position id "P\u{200B}1" contains an invisible character (U+200B)"#), "\(invisible)")
        #expect(!bidi.contains("\u{202E}") && !invisible.contains("\u{200B}"), "shown escaped, never as they are")
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

    @Test("a bracket whose stop or target is on the wrong side of its own entry or scale-in prices is refused (invalidBracket); the next one is taken")
    func wrongSidedBracketsAreRefused() throws {
        let trace = """
        {"type":"open","position":"P1","symbol":"GLD","side":"buy","quantity":"100","entry":{"type":"limit","limit":"246"},"stopLoss":"247","takeProfit":"250"}
        {"type":"open","position":"P2","symbol":"GLD","side":"buy","quantity":"100","entry":{"type":"limit","limit":"246"},"takeProfit":"240"}
        {"type":"open","position":"P3","symbol":"GLD","side":"sell","quantity":"100","entry":{"type":"stop","stop":"246"},"stopLoss":"245"}
        {"type":"open","position":"P4","symbol":"GLD","side":"buy","quantity":"100","stopLoss":"245","takeProfit":"250","scaleIns":[{"quantity":"100","limit":"244"}]}
        {"type":"open","position":"P5","symbol":"GLD","side":"buy","quantity":"100","entry":{"type":"limit","limit":"246"},"stopLoss":"244","takeProfit":"250","scaleIns":[{"quantity":"100","limit":"245"}]}
        {"type":"fill","position":"P5","role":"entry","quantity":"100","price":"246","execId":"E1"}
        """
        let report = TraceReplayer.replay(trace, options: ReplayOptions())
        #expect(report.rejected.map { "\($0.line):\($0.error.code.rawValue)" } == ["1:invalidBracket", "2:invalidBracket", "3:invalidBracket", "4:invalidBracket"])
        #expect(report.rejected.first?.error.message.contains("must be below the entry's price 246") == true, "\(report.rejected.first?.error.message ?? "")")
        #expect(report.positions.map(\.id) == ["P5"])
        #expect(live(report, .stopLoss)?.openQuantity == 100)
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
        #expect(live(report, .takeProfit)?.openQuantity == 200, "its modify was refused for good: a new order of 200 replaced it")
        #expect(report.alerts.count == 1)
        #expect(report.alerts.first?.role == .takeProfit)
        #expect(report.alerts.first?.message.contains("so a new order of 200 replaces it") == true, "\(report.alerts)")
        #expect(report.operations[.modify] == 6)
        #expect(report.operations[.submit] == 5, "entry, scale-in, stop, target and the target's replacement")
        #expect(report.operations[.cancel] == 1, "the short target, once its replacement was live")
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

    private static let openLong = "{\"type\":\"open\",\"position\":\"P\",\"symbol\":\"GLD\",\"side\":\"buy\",\"quantity\":\"300\",\"stopLoss\":\"245\",\"takeProfit\":\"250\",\"scaleIns\":[{\"quantity\":\"100\",\"limit\":\"246\"}]}"

    private static func fill(_ role: String, _ quantity: String, _ exec: String, index: Int? = nil) -> String {
        "{\"type\":\"fill\",\"position\":\"P\",\"role\":\"\(role)\"\(index.map { ",\"index\":\($0)" } ?? ""),\"quantity\":\"\(quantity)\",\"price\":\"248\",\"execId\":\"\(exec)\"}"
    }

    @Test("a line that is not valid UTF-8 is refused on its own; the lines around it count")
    func invalidUTF8Line() {
        var bytes = Array((Self.openLong + "\n" + Self.fill("entry", "100", "E1") + "\n").utf8)
        bytes += Array("{\"type\":\"fill\",\"position\":\"P\",\"role\":\"entry\",\"quantity\":\"1\",\"price\":\"248\",\"execId\":\"".utf8) + [0xFF] + Array("\"}\n".utf8)
        bytes += Array((Self.fill("entry", "100", "E2") + "\r" + Self.fill("entry", "100", "E3")).utf8)
        let report = TraceReplayer.replay(bytes: bytes)
        #expect(report.rejected.map(\.line) == [3])
        #expect(report.rejected.first?.error.code == .malformed)
        #expect(report.positions.first?.netQuantity == 300, "lines 2, 4 and 5 (after a lone carriage return) all count")
        #expect(report.positions.first?.liveOrder(.stopLoss)?.openQuantity == 300)
        let marked = TraceReplayer.replay(bytes: [0xEF, 0xBB, 0xBF] + Array((Self.openLong + "\n" + Self.fill("entry", "5", "E1")).utf8))
        #expect(marked.rejected.isEmpty, "a byte-order mark before the first line is skipped")
        #expect(marked.positions.first?.netQuantity == 5)
    }

    @Test("a line in UTF-16 or UTF-32, or with any raw control byte, is refused: the decoder must not guess another encoding")
    func wideOrControlBytesAreRefused() {
        let fill = Self.fill("entry", "100", "E1")
        let trailingComma = String(fill.dropLast()) + ",}"
        var bytes = Array((Self.openLong + "\n").utf8)
        bytes += fill.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } + [0x0A]            // line 2: UTF-16LE
        bytes += fill.unicodeScalars.flatMap { [0, 0, 0, UInt8($0.value)] } + [0x0A]           // line 3: UTF-32BE
        bytes += trailingComma.utf16.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } + [0x0A]   // line 4: UTF-16BE, not even JSON
        bytes += Array(fill.utf8.prefix(5)) + [0x01] + Array(fill.utf8.dropFirst(5)) + [0x0A]    // line 5: a raw control byte
        bytes += Array((Self.fill("entry", "40", "E2") + "\n").utf8)
        let report = TraceReplayer.replay(bytes: bytes)
        #expect(report.rejected.map(\.line) == [2, 3, 4, 5])
        #expect(report.rejected.allSatisfy { $0.error.code == .malformed }, "\(report.rejected)")
        #expect(report.rejected.prefix(3).allSatisfy { $0.error.message.contains("UTF-16 or UTF-32") }, "\(report.rejected)")
        #expect(report.positions.first?.netQuantity == 40, "only the UTF-8 fill counts")
    }

    @Test("a symbol or position id with white space at either end, or a blank one, is refused: \"GLD \" would be another symbol")
    func paddedIdentifiersAreRefused() {
        for (symbol, position) in [(" ", "P"), ("GLD ", "P"), (" GLD", "P"), ("GLD", " "), ("GLD", "P\t"), ("GLD", "\u{A0}P")] {
            let line = #"{"type":"open","position":"\#(position)","symbol":"\#(symbol)","side":"buy","quantity":"100"}"#
            let report = TraceReplayer.replay(line)
            #expect(report.rejected.first?.error.code == .malformed && report.positions.isEmpty, "\(line): \(report.rejected)")
        }
        let inner = TraceReplayer.replay(#"{"type":"open","position":"P 1","symbol":"BRK B","side":"buy","quantity":"100"}"#)
        #expect(inner.rejected.isEmpty && inner.positions.count == 1, "white space inside is a name's own")
    }

    @Test("an operation meets the first fault given that fits it, in the order given, whatever line numbers the caller passes")
    func faultsMeetOperationsInTheOrderGiven() {
        var replayer = TraceReplayer()
        // Both on "line 1": a caller numbering lines its own way (per file, say).
        replayer.apply(#"{"type":"brokerFault","operation":"submit","count":1,"kind":"permanent"}"#, lineNumber: 1)
        replayer.apply(#"{"type":"brokerFault","operation":"submit","count":1,"kind":"transient","position":"P"}"#, lineNumber: 1)
        replayer.apply(Self.openLong, lineNumber: 1)
        let report = replayer.report()
        #expect(report.alerts.contains { $0.kind == .entryRejected }, "the entry met the first fault, a refusal: \(report.alerts)")
        #expect(report.unusedFaults.count == 1 && report.unusedFaults.first?.contains("transient") == true, "\(report.unusedFaults)")
    }

    @Test("valid JSON numbers that are zero with an exponent (0e5, -0E1, 1e-400) are read as zero, as strict JSON allows; strings that look so are left alone")
    func zeroNumbersWithExponents() {
        let lines = [
            Self.openLong.replacingOccurrences(of: #""side""#, with: #""note":1e-400,"side""#),
            Self.fill("entry", "300", "1e-400"),
            Self.fill("scaleIn", "40", "0e5", index: 0).replacingOccurrences(of: #""index":0"#, with: #""index":0e5"#),
            Self.fill("scaleIn", "10", "E4", index: 0).replacingOccurrences(of: #""index":0"#, with: #""index":-0E1"#),
            Self.fill("scaleIn", "10", "E5", index: 0).replacingOccurrences(of: #""index":0"#, with: #""index":00"#),
            // Zeros that Swift's Double reads but JSON does not write so: still refused.
            Self.fill("scaleIn", "10", "E6", index: 0).replacingOccurrences(of: #""index":0"#, with: #""index":00e0"#),
            Self.fill("scaleIn", "10", "E7", index: 0).replacingOccurrences(of: #""index":0"#, with: #""index":0.e5"#),
            Self.fill("scaleIn", "10", "E8", index: 0).replacingOccurrences(of: #""index":0"#, with: #""index":-00.e-3"#),
        ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.map(\.line) == [5, 6, 7, 8], "only what is not JSON is refused: \(report.rejected)")
        #expect(report.rejected.allSatisfy { $0.error.code == .malformed })
        #expect(report.positions.first?.netQuantity == 350, "\(report.positions)")
    }

    @Test("a symbol or position id holding an invisible character (a line separator, a zero-width space, a direction override) is refused: it would look like another; an empty id says so")
    func invisibleCharactersInNamesAreRefused() {
        let cases: [(symbol: String, position: String, message: String)] = [
            (#"A\u2028B"#, "P", #"symbol "A\u{2028}B" contains an invisible character (U+2028)"#),
            (#"G\u200bLD"#, "P", #"symbol "G\u{200B}LD" contains an invisible character (U+200B)"#),
            ("GLD", #"P\u202e5"#, #"position id "P\u{202E}5" contains an invisible character (U+202E)"#),
            ("GLD", #"P\u00851"#, #"position id "P\u{85}1" contains a control character (U+0085)"#),
            ("GLD", "", "position id must not be empty"),
        ]
        for (symbol, position, message) in cases {
            let line = #"{"type":"open","position":"\#(position)","symbol":"\#(symbol)","side":"buy","quantity":"100"}"#
            let report = TraceReplayer.replay(line)
            #expect(report.rejected.first?.error.code == .malformed && report.positions.isEmpty, "\(line): \(report.rejected)")
            #expect(report.rejected.first?.error.message == message, "\(line)")
        }
        let visible = TraceReplayer.replay(#"{"type":"open","position":"P-é 1","symbol":"BRK.B","side":"buy","quantity":"100"}"#)
        #expect(visible.rejected.isEmpty && visible.positions.count == 1, "accented letters and punctuation are a name's own")
    }

    @Test("a trace fed in chunks, split anywhere (a \\r\\n pair and a multi-byte character included), replays as the whole does")
    func chunkedTraceReplaysAsTheWhole() {
        var bytes = [0xEF, 0xBB, 0xBF] + Array((Self.openLong + "\r\n" + Self.fill("entry", "100", "E1") + "\r\n\r\n").utf8)
        bytes += Array((Self.fill("entry", "100", "E\u{e9}") + "\r" + Self.fill("scaleIn", "40", "E3", index: 0) + "\n").utf8)
        bytes += Array(Self.fill("entry", "100", "E1").utf8) // a duplicate, on line 6, without a line end
        let whole = TraceReplayer.replay(bytes: bytes)
        #expect(whole.rejected.map(\.line) == [6] && whole.positions.first?.netQuantity == 240)
        for cut in 1..<bytes.count {
            var stream = TraceStream()
            stream.feed(bytes[..<cut])
            stream.feed(bytes[cut...])
            let report = stream.finish()
            #expect(report.json == whole.json, "split at byte \(cut)")
        }
        var byteByByte = TraceStream()
        for byte in bytes { byteByByte.feed(CollectionOfOne(byte)) }
        #expect(byteByByte.finish().json == whole.json)
    }

    @Test("a refusal quotes a huge value by its start and length; an empty symbol on a fill is malformed, as on an open")
    func refusalsQuoteLongValuesShortly() {
        let huge = String(repeating: "9", count: 100_000)
        let trace = [Self.openLong, Self.fill("entry", huge, "E1"), Self.fill("entry", "1", "E2").replacingOccurrences(of: "}", with: ",\"symbol\":\"\"}"),
                     Self.fill("entry", "1", "E3").replacingOccurrences(of: "\"entry\"", with: "\"" + String(repeating: "x", count: 5_000) + "\"")]
        let report = TraceReplayer.replay(trace.joined(separator: "\n"))
        #expect(report.rejected.map(\.line) == [2, 3, 4])
        #expect(report.rejected.map(\.error.code) == [.invalidQuantity, .malformed, .malformed])
        #expect(report.rejected.allSatisfy { $0.error.message.utf8.count < 200 }, "\(report.rejected.map(\.error.message.utf8.count))")
        #expect(report.rejected.first?.error.message.hasSuffix("(100000 characters)") == true)
        #expect(report.rejected[1].error.message == "field 'symbol' must not be empty")
        #expect(report.positions.first?.netQuantity == 0)
    }

    @Test("an overfill or a cumulative quantity going back is refused and alerted as fillRefused, as the runtime does; other refusals are not")
    func refusedFillsAreAlerted() {
        let backwards = Self.fill("entry", "10", "E3").replacingOccurrences(of: "}", with: ",\"cumQuantity\":\"50\"}")
        let trace = [Self.openLong, Self.fill("entry", "100", "E1").replacingOccurrences(of: "}", with: ",\"cumQuantity\":\"100\"}"),
                     Self.fill("entry", "250", "E2"), backwards, Self.fill("entry", "1", "E1")]
        let report = TraceReplayer.replay(trace.joined(separator: "\n"))
        #expect(report.rejected.map(\.error.code) == [.overfill, .cumulativeWentBackwards, .duplicateExecution])
        let refused = report.alerts.filter { $0.kind == .fillRefused }
        #expect(refused.count == 2, "\(report.alerts)")
        #expect(refused.first?.message.hasPrefix("fill E2 refused") == true && refused.first?.role == .entry && refused.first?.positionID == "P")
        #expect(report.notices.contains { $0.hasPrefix("alert: fillRefused") })
    }

    @Test("a line longer than the limit is refused without being kept, and the lines after it count")
    func overlongLineIsRefused() {
        var stream = TraceStream()
        stream.feed(Array((Self.openLong + "\n").utf8))
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 16)
        for _ in 0..<(TraceStream.maximumLineLength / chunk.count + 2) { stream.feed(chunk) }
        stream.feed(Array(("\r\n" + Self.fill("entry", "100", "E1") + "\n").utf8))
        let report = stream.finish()
        #expect(report.rejected.map(\.line) == [2])
        #expect(report.rejected.first?.error.code == .malformed)
        #expect(report.rejected.first?.error.message.contains("longer than") == true)
        #expect(report.positions.first?.netQuantity == 100, "line 3 counts")
        // A line of exactly the limit is read (and refused only for what it says).
        var atLimit = TraceStream()
        atLimit.feed([UInt8](repeating: UInt8(ascii: " "), count: TraceStream.maximumLineLength))
        #expect(atLimit.finish().rejected.isEmpty, "a blank line of the longest length is skipped")
    }

    @Test("what the decoder lets through is refused: a key named twice in one object, a trailing comma, a byte-order mark inside the file")
    func strictJSON() {
        let twice = Self.fill("entry", "100", "E2").replacingOccurrences(of: "\"quantity\":\"100\"", with: "\"quantity\":\"100\",\"quantity\":\"1\"")
        let escaped = Self.fill("entry", "100", "E3").replacingOccurrences(of: "\"execId\"", with: "\"\\u0071uantity\":\"2\",\"execId\"")
        let nested = Self.openLong.replacingOccurrences(of: "\"limit\":\"246\"", with: "\"limit\":\"246\",\"limit\":\"1\"").replacingOccurrences(of: "\"P\"", with: "\"Q\"")
        let apart = "{\"type\":\"fill\",\"position\":\"P\",\"role\":\"entry\",\"quantity\":\"7\",\"price\":\"248\",\"execId\":\"E4\",\"note\":[{\"a\":1},{\"a\":2}],\"x\":{\"type\":\"quantity\"}}"
        let trailing = Self.fill("entry", "100", "E5").replacingOccurrences(of: "}", with: ",}")
        let inArray = Self.openLong.replacingOccurrences(of: "}]}", with: "},]}").replacingOccurrences(of: "\"P\"", with: "\"R\"")
        let marked = "\u{FEFF}" + Self.fill("entry", "100", "E6")
        let report = TraceReplayer.replay([Self.openLong, Self.fill("entry", "10", "E1"), twice, escaped, nested, apart, trailing, inArray, marked]
            .joined(separator: "\n"))
        #expect(report.rejected.map(\.line) == [3, 4, 5, 7, 8, 9])
        #expect(report.rejected.allSatisfy { $0.error.code == .malformed })
        #expect(report.rejected.first?.error.message == "not valid JSON: the key 'quantity' appears twice in one object")
        #expect(report.rejected[3].error.message == "not valid JSON: a comma before '}'")
        #expect(report.rejected[4].error.message == "not valid JSON: a comma before ']'")
        #expect(report.rejected[5].error.message.contains("byte-order mark"))
        #expect(report.rejected[1].error.message.contains("'quantity'"), "an escaped spelling is the same key")
        #expect(report.rejected[2].error.message.contains("'limit'"), "nested objects are checked too")
        #expect(report.positions.map(\.id) == ["P"], "the refused open changed nothing")
        #expect(report.positions.first?.netQuantity == 17, "equal keys in different objects are fine")
    }

    @Test("hundreds of full-size flips of one position: no sum overflows (one did, after about 92, and the process trapped)")
    func longFlipHistoryDoesNotOverflow() {
        var lines = ["{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"X\",\"side\":\"buy\",\"quantity\":\"1000000000\",\"stopLoss\":\"245\",\"takeProfit\":\"250\"}",
                     "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"1000000000\",\"price\":\"248\",\"execId\":\"E0\"}"]
        for cycle in 1...200 {
            // The target's cancel is answered "too late" (it filled), so the stop's fill (flat) is
            // followed by the target's (a flip); the bracket then protects the new side.
            lines.append("{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":3,\"kind\":\"tooLate\",\"position\":\"P1\",\"role\":\"takeProfit\"}")
            lines.append("{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"1000000000\",\"price\":\"245\",\"execId\":\"S\(cycle)\"}")
            lines.append("{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"1000000000\",\"price\":\"250\",\"execId\":\"T\(cycle)\"}")
        }
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.isEmpty, "\(report.rejected.prefix(3))")
        let position = report.positions.first
        #expect(position?.netQuantity.magnitude == 1_000_000_000, "each cycle ends one full size from flat")
        #expect(position?.liveOrder(.stopLoss)?.openQuantity == 1_000_000_000)
    }

    @Test("a report without a cumulative quantity that says nothing is left does not shrink the order: an earlier report arriving after it still counts")
    func leavesWithoutCumulativeOutOfOrder() {
        let lines = [Self.openLong,
                     "{\"type\":\"fill\",\"position\":\"P\",\"role\":\"entry\",\"quantity\":\"200\",\"price\":\"248\",\"execId\":\"E2\",\"leavesQuantity\":\"0\"}",
                     "{\"type\":\"fill\",\"position\":\"P\",\"role\":\"entry\",\"quantity\":\"100\",\"price\":\"248\",\"execId\":\"E1\",\"leavesQuantity\":\"200\"}",
                     "{\"type\":\"fill\",\"position\":\"P\",\"role\":\"entry\",\"quantity\":\"1\",\"price\":\"248\",\"execId\":\"E3\"}"]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.map(\.line) == [4], "only a fill beyond the order's 300 is an overfill")
        #expect(report.rejected.first?.error.code == .overfill)
        #expect(report.positions.first?.netQuantity == 300)
        #expect(report.positions.first?.liveOrder(.stopLoss)?.openQuantity == 300)
    }

    @Test("a fill line for a role goes to the order waiting for the fills a 'too late' answer announced, even when a replacement created first is newer")
    func fillGoesToTheOrderThatWasTooLate() throws {
        let lines = [
            "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"AAA\",\"side\":\"buy\",\"quantity\":\"10\",\"stopLoss\":\"90\",\"takeProfit\":\"110\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"4\",\"price\":\"100\",\"execId\":\"E1\"}",
            "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":3,\"kind\":\"tooLate\",\"position\":\"P1\",\"role\":\"takeProfit\"}",
            // Net 6: a target of 6 is created, then the old one's cancel is answered too late.
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"2\",\"price\":\"100\",\"execId\":\"E2\"}",
            // Its fill: the old target of 4, not the new one of 6.
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"4\",\"price\":\"110\",\"execId\":\"E3\"}",
        ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: ReplayOptions(nativeModify: false, strategy: .createThenCancel))
        #expect(report.rejected.isEmpty)
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == 2)
        let targets = position.liveOrders.filter { $0.role == .takeProfit }
        #expect(targets.map(\.openQuantity) == [2], "one target of |net|, not the new 6 filled in part beside the old 4: \(targets)")
        #expect(position.orders.contains { $0.role == .takeProfit && $0.status == .filled && $0.filledQuantity == 4 })
    }

    /// Flips with a protective order the broker would not cancel (left on the wrong side): found by a QA pass.
    static let flipsWithAStuckOrder: [(lines: [String], nativeModify: Bool)] = [
            ([
                "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"AAA\",\"side\":\"buy\",\"quantity\":\"100\",\"entry\":{\"type\":\"market\"},\"stopLoss\":\"90\",\"takeProfit\":\"110\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"100\",\"price\":\"100\",\"execId\":\"E1\"}",
                "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":2,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"takeProfit\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"80\",\"price\":\"90\",\"execId\":\"E2\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"50\",\"price\":\"110\",\"execId\":\"E3\"}",
            ], nativeModify: false),
            ([
                "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"AAA\",\"side\":\"sell\",\"quantity\":\"100\",\"entry\":{\"type\":\"market\"},\"stopLoss\":\"110\",\"takeProfit\":\"90\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"100\",\"price\":\"100\",\"execId\":\"E1\"}",
                "{\"type\":\"brokerFault\",\"operation\":\"modify\",\"count\":1,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"stopLoss\"}",
                "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":2,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"stopLoss\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"80\",\"price\":\"90\",\"execId\":\"E2\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"50\",\"price\":\"110\",\"execId\":\"E3\"}",
            ], nativeModify: true),
            ([
                "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"AAA\",\"side\":\"buy\",\"quantity\":\"100\",\"entry\":{\"type\":\"market\"},\"stopLoss\":\"90\",\"takeProfit\":\"110\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"100\",\"price\":\"100\",\"execId\":\"E1\"}",
                "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":3,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"takeProfit\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"100\",\"price\":\"90\",\"execId\":\"E2\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"50\",\"price\":\"110\",\"execId\":\"E3\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"20\",\"price\":\"90\",\"execId\":\"E4\"}",
            ], nativeModify: false),
            ([
                "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"AAA\",\"side\":\"buy\",\"quantity\":\"100\",\"entry\":{\"type\":\"market\"},\"stopLoss\":\"90\",\"takeProfit\":\"110\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"100\",\"price\":\"100\",\"execId\":\"E1\"}",
                "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":3,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"takeProfit\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"100\",\"price\":\"90\",\"execId\":\"E2\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"50\",\"price\":\"110\",\"execId\":\"E3\"}",
                "{\"type\":\"brokerFault\",\"operation\":\"modify\",\"count\":1,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"takeProfit\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"20\",\"price\":\"90\",\"execId\":\"E4\"}",
            ], nativeModify: true)
    ]

    @Test("after a flip, an order the broker kept on the wrong side never costs the right side its order: not cancelled as a double, not dropped on a resize",
          arguments: 0..<flipsWithAStuckOrder.count)
    func flipBesideAStuckOrder(index: Int) throws {
        let trace = Self.flipsWithAStuckOrder[index]
        let report = TraceReplayer.replay(trace.lines.joined(separator: "\n"), options: ReplayOptions(nativeModify: trace.nativeModify))
        #expect(report.rejected.isEmpty)
        let position = try #require(report.positions.first)
        let net = position.netQuantity
        #expect(net.magnitude == 30, "the flip left 30 the other way")
        let rightSide: Side = net.units > 0 ? .sell : .buy
        for role in [OrderRole.stopLoss, .takeProfit] {
            let covering = position.liveOrders.filter { $0.role == role && $0.side == rightSide }
            #expect(covering.map(\.openQuantity) == [30], "\(role): \(position.liveOrders)")
        }
        #expect(report.alerts.contains { $0.message.contains("on the wrong side") })
        #expect(!report.alerts.contains { $0.message.contains("is being cancelled so that the role is not covered twice") })
    }

    @Test("a fill line with a side fills the role's order on that side: the old order the broker kept after a flip")
    func sideNamesTheStuckOrder() throws {
        let lines = [
                "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"AAA\",\"side\":\"buy\",\"quantity\":\"100\",\"entry\":{\"type\":\"market\"},\"stopLoss\":\"90\",\"takeProfit\":\"110\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"100\",\"price\":\"100\",\"execId\":\"E1\"}",
                "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":2,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"takeProfit\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"100\",\"price\":\"90\",\"execId\":\"E2\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"50\",\"price\":\"110\",\"execId\":\"E3\"}",
                "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"50\",\"price\":\"110\",\"execId\":\"E4\",\"side\":\"sell\"}",
            ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: ReplayOptions(nativeModify: false))
        #expect(report.rejected.isEmpty, "\(report.rejected)")
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == -100, "the stuck sell filled too")
        #expect(position.liveOrders.filter { $0.role == .takeProfit }.map(\.openQuantity) == [100])
    }

    @Test("an operation that fails for good and leaves a role short of the position says how much its live orders cover")
    func shortRoleAlertSaysHowShort() {
        let lines = [
            "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"AAA\",\"side\":\"buy\",\"quantity\":\"100\",\"stopLoss\":\"90\",\"takeProfit\":\"110\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"50\",\"price\":\"100\",\"execId\":\"E1\"}",
            "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":1,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"stopLoss\"}",
            "{\"type\":\"brokerFault\",\"operation\":\"submit\",\"count\":1,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"takeProfit\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"50\",\"price\":\"100\",\"execId\":\"E2\"}",
        ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: ReplayOptions(nativeModify: false))
        #expect(report.alerts.map(\.message) == [
            "cancel refused: scripted permanent fault; the role's orders known to be live cover 50 of 100",
            "submit refused: scripted permanent fault; the role's orders known to be live cover 0 of 100",
        ])
    }

    @Test("a negative leaves quantity is refused, and the error says zero is allowed")
    func negativeLeaves() {
        let lines = [Self.openLong,
                     "{\"type\":\"fill\",\"position\":\"P\",\"role\":\"entry\",\"quantity\":\"1\",\"price\":\"248\",\"execId\":\"E1\",\"leavesQuantity\":\"-1\"}",
                     "{\"type\":\"fill\",\"position\":\"P\",\"role\":\"entry\",\"quantity\":\"0\",\"price\":\"248\",\"execId\":\"E2\"}"]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.map(\.error.message) == ["'leavesQuantity' must be zero or more, got -1", "'quantity' must be positive, got 0"])
        let tooMany = TraceReplayer.replay("{\"type\":\"brokerFault\",\"operation\":\"modify\",\"count\":1000000000,\"kind\":\"transient\"}")
        #expect(tooMany.rejected.first?.error.message == "field 'count' is out of range (more than 9 digits), got 1000000000")
        let twentyDigits = TraceReplayer.replay("{\"type\":\"brokerFault\",\"operation\":\"modify\",\"count\":99999999999999999999,\"kind\":\"transient\"}")
        #expect(twentyDigits.rejected.first?.error.message == "field 'count' is out of range (more than 9 digits), got 99999999999999999999", "as written, not 1e+20")
        #expect(report.positions.first?.netQuantity == 0)
    }

    @Test("a field a line's type does not read is named (a misspelt 'takeProfitt' would open a bracket without a target, unsaid)")
    func unknownFieldsAreNamed() {
        let misspelt = Self.openLong.replacingOccurrences(of: "\"takeProfit\"", with: "\"takeProfitt\"")
            .replacingOccurrences(of: "\"limit\":\"246\"", with: "\"limit\":\"246\",\"lmt\":\"1\"")
        let lines = [misspelt, Self.fill("entry", "10", "E1").replacingOccurrences(of: "}", with: ",\"note\":\"x\"}"),
                     "{\"type\":\"brokerFault\",\"operation\":\"modify\",\"count\":1,\"kind\":\"transient\",\"postion\":\"P\"}",
                     Self.fill("entry", "-1", "E2").replacingOccurrences(of: "}", with: ",\"other\":1}")]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.map(\.line) == [4], "an unknown field does not refuse a line")
        let expected: [String] = [
            "line 1: 'takeProfitt' is not a field of an open line; it was ignored",
            "line 1: 'scaleIns[0].lmt' is not a field of an open line; it was ignored",
            "line 2: 'note' is not a field of a fill line; it was ignored",
            "line 3: 'postion' is not a field of a brokerFault line; it was ignored",
        ]
        #expect(report.ignoredFields == expected)
        #expect(report.notices.contains("ignored: line 2: 'note' is not a field of a fill line; it was ignored"))
        // Known fields that the line's other fields make meaningless are named too.
        let meaningless = TraceReplayer.replay([
            #"{"type":"open","position":"M","symbol":"M","side":"buy","quantity":"1","entry":{"type":"market","limit":"95"}}"#,
            #"{"type":"fill","position":"M","role":"entry","index":3,"quantity":"1","price":"95","execId":"X"}"#,
            #"{"type":"brokerFault","operation":"modify","count":1,"kind":"transient","index":2}"#,
        ].joined(separator: "\n"))
        #expect(meaningless.ignoredFields == ["line 1: 'entry.limit' means nothing for a market entry; it was ignored",
                                              "line 2: 'index' means nothing for role entry; it was ignored",
                                              "line 3: 'index' means nothing without role scaleIn; it was ignored"])
        #expect(report.positions.first?.liveOrder(.takeProfit) == nil, "still ignored: said, not guessed")
    }

    @Test("a stop of the old side waiting for its fills after 'too late' does not keep the position's new side from its own stop")
    func awaitingOrderOfTheOtherSideDoesNotBlock() throws {
        let lines = [
            #"{"type":"open","position":"P0","symbol":"S","side":"buy","quantity":"300","stopLoss":"90","takeProfit":"110","scaleIns":[{"quantity":"2","limit":"100"}]}"#,
            #"{"type":"fill","position":"P0","role":"entry","quantity":"1","price":"105","execId":"E1"}"#,
            #"{"type":"fill","position":"P0","role":"takeProfit","quantity":"1","price":"95","execId":"E2"}"#,
            #"{"type":"brokerFault","operation":"cancel","count":3,"kind":"tooLate","role":"stopLoss"}"#,
            // Flat, then a late stop fill flips it short: a buy stop is placed, and its cancel is
            // answered "too late" three times with no fill (fillsOverdue): it waits for its fills.
            #"{"type":"fill","position":"P0","role":"stopLoss","quantity":"1","price":"100.25","execId":"E3"}"#,
            // The rest of the entry takes the position long 99: it needs a sell stop.
            #"{"type":"fill","position":"P0","role":"entry","quantity":"100","price":"100","execId":"E4"}"#,
        ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.isEmpty)
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == 99)
        let stops = position.orders.filter { $0.role == .stopLoss && $0.status.isLive }
        #expect(stops.filter { $0.side == .sell }.map(\.openQuantity) == [99], "the long is protected")
        #expect(stops.filter { $0.side == .buy }.count == 1, "the buy stop still waits for its fills")
        #expect(report.alerts.contains { $0.kind == .fillsOverdue })
    }

    @Test("create-then-cancel: two refused cancels, then a refused replacement, never leave two orders of one role live")
    func refusedReplacementsKeepOneOrderPerRole() throws {
        let lines = [
            #"{"type":"open","position":"P1","symbol":"AAPL","side":"buy","quantity":"100","stopLoss":"90","takeProfit":"120"}"#,
            #"{"type":"fill","position":"P1","role":"entry","quantity":"50","price":"100","execId":"E1"}"#,
            #"{"type":"brokerFault","operation":"cancel","count":2,"kind":"permanent","position":"P1","role":"takeProfit"}"#,
            #"{"type":"fill","position":"P1","role":"stopLoss","quantity":"10","price":"90","execId":"E2"}"#,
            #"{"type":"brokerFault","operation":"submit","count":1,"kind":"permanent","position":"P1","role":"takeProfit"}"#,
            #"{"type":"fill","position":"P1","role":"entry","quantity":"20","price":"100","execId":"E3"}"#,
            #"{"type":"fill","position":"P1","role":"entry","quantity":"30","price":"100","execId":"E4"}"#,
        ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: .init(nativeModify: false, strategy: .createThenCancel))
        #expect(report.violations.isEmpty, "\(report.violations)")
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == 90)
        #expect(position.orders.filter { $0.role == .takeProfit && $0.status.isLive }.map(\.openQuantity) == [90])
        #expect(report.alerts.contains { $0.message.hasSuffix("with 1 other live takeProfit order the role covers 90 of 40, more than the position") },
                "the second refusal says what the role then covers in all")
    }

    @Test("create-then-cancel: while an old stop waits for its fills after 'too late', a stop larger than the position is replaced by a smaller one",
          arguments: [("90", 10, [10]), ("50", 50, [10, 40])] as [(String, Quantity, [Quantity])])
    func awaitingRoleStillShrinks(targetFill: String, net: Quantity, stops: [Quantity]) throws {
        let lines = [
            #"{"type":"open","position":"P1","symbol":"AAPL","side":"buy","quantity":"100","stopLoss":"90","takeProfit":"120"}"#,
            #"{"type":"fill","position":"P1","role":"entry","quantity":"10","price":"100","execId":"E1"}"#,
            #"{"type":"brokerFault","operation":"cancel","count":3,"kind":"tooLate","position":"P1","role":"stopLoss"}"#,
            #"{"type":"fill","position":"P1","role":"entry","quantity":"90","price":"100","execId":"E2"}"#,
            // The target fills: the stop of 100 placed before covers more than the position.
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"\(targetFill)\",\"price\":\"120\",\"execId\":\"E3\"}",
        ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: .init(nativeModify: false, strategy: .createThenCancel))
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == net)
        #expect(position.orders.filter { $0.role == .stopLoss && $0.status.isLive }.map(\.openQuantity).sorted() == stops,
                "the stop of 100 is replaced by one of the net less the 10 of the one still waiting for its fills (if that filled, the position is 10 smaller; if not, it covers 10 of it); none when the waiting one covers it all")
    }

    @Test("a stop the broker says it does not know keeps the size a timed-out modify may have given it: its late fill still counts")
    func unknownOrderKeepsTheUncertainSize() throws {
        let lines = [
            #"{"type":"open","position":"P1","symbol":"GLD","side":"buy","quantity":"100","stopLoss":"90","takeProfit":"110","scaleIns":[{"quantity":"100","limit":"99"}]}"#,
            #"{"type":"fill","position":"P1","role":"entry","quantity":"100","price":"100","execId":"E1"}"#,
            #"{"type":"brokerFault","operation":"modify","count":3,"kind":"timedOut","position":"P1","role":"stopLoss"}"#,
            #"{"type":"fill","position":"P1","role":"scaleIn","index":0,"quantity":"100","price":"99","execId":"E2"}"#,
            #"{"type":"brokerFault","operation":"cancel","count":1,"kind":"unknownOrder","position":"P1","role":"stopLoss"}"#,
            #"{"type":"fill","position":"P1","role":"takeProfit","quantity":"200","price":"110","execId":"E3"}"#,
            // The stop had been enlarged to 200 (the modify's answers were lost) and filled whole.
            #"{"type":"fill","position":"P1","role":"stopLoss","quantity":"200","price":"90","execId":"E4"}"#,
        ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.isEmpty, "\(report.rejected)")
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == -200, "the late fill is booked: the position flipped")
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 200)
    }

    @Test("a realized P&L beyond 10^21 refuses further fills of the position rather than overflow, and alerts each refused fill")
    func realizedPnLIsBounded() {
        var lines = [#"{"type":"open","position":"P1","symbol":"X","side":"buy","quantity":"1000000000","stopLoss":"90","takeProfit":"110"}"#,
                     #"{"type":"fill","position":"P1","role":"entry","quantity":"1000000000","price":"0.00000001","execId":"E0"}"#]
        // Each pair of fills closes a billion bought at 10^-8 at 10^9, then opens the other way.
        for cycle in 0..<1_100 {
            let (high, low) = ("1000000000", "0.00000001")
            let (close, open) = cycle % 2 == 0 ? (high, high) : (low, low)
            lines.append("{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"1000000000\",\"price\":\"\(close)\",\"execId\":\"S\(cycle)\"}")
            lines.append("{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"1000000000\",\"price\":\"\(open)\",\"execId\":\"T\(cycle)\"}")
        }
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.first?.error.code == .invalidQuantity)
        #expect(report.rejected.first?.error.message.contains("beyond what it can book exactly") == true)
        // The broker made those trades all the same: each refused one is alerted, as an overfill is.
        let refusedFills = report.alerts.filter { $0.kind == .fillRefused }
        #expect(refusedFills.count == report.rejected.count && refusedFills.first?.positionID == "P1", "\(report.alerts.prefix(2))")
        let bound: UInt128 = 1_000_000_000_000_000_000_000 * 10_000_000_000_000_000
        #expect((report.positions.first?.realizedPnL.units.magnitude ?? 0) > bound)
    }

    @Test("a scaleIn fill must say which scale-in; numbers out of range say so")
    func scaleInIndexAndRanges() throws {
        let lines = [Self.openLong, Self.fill("entry", "300", "E1"), Self.fill("scaleIn", "10", "E2"),
                     Self.fill("scaleIn", "10", "E3").replacingOccurrences(of: "\"role\":\"scaleIn\"", with: "\"role\":\"scaleIn\",\"index\":null"),
                     Self.fill("scaleIn", "10", "E4", index: 0),
                     Self.fill("entry", "12345678901234567890123456789012345678", "E5"),
                     Self.fill("entry", "0.000000001", "E6"),
                     "{\"type\":\"brokerFault\",\"operation\":\"modify\",\"count\":2147483647,\"kind\":\"transient\"}"]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.map(\.line) == [3, 4, 6, 7, 8])
        #expect(report.rejected[0].error.message.contains("needs field 'index'"))
        #expect(report.rejected[1].error.code == .malformed)
        #expect(report.rejected[2].error == InputError(.invalidQuantity, "'quantity' is out of range (at most 1000000000), got 12345678901234567890123456789012345678"))
        #expect(report.rejected[3].error == InputError(.invalidQuantity, "'quantity' must have at most 8 decimal places, got '0.000000001'"))
        #expect(report.rejected[4].error.message.contains("out of range"))
        #expect(report.positions.first?.netQuantity == 310, "only the scale-in fill that names its index counts")
    }

    @Test("JSON nested past the decoder's limit is refused saying so, not as merely invalid")
    func deeplyNestedLine() {
        let deep = "{\"type\":\"fill\",\"x\":" + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}"
        let report = TraceReplayer.replay([Self.openLong, deep].joined(separator: "\n"))
        #expect(report.rejected.first?.error == InputError(.malformed, "JSON nested more than 511 levels deep"))
        let broken = TraceReplayer.replay([Self.openLong, "{\"type\":\"fill\",\"x\":[[\"]]\""].joined(separator: "\n"))
        #expect(broken.rejected.first?.error.code == .malformed && broken.rejected.first?.error.message.hasPrefix("not valid JSON") == true,
                "brackets inside a string do not count: \(broken.rejected)")
        // Where the decoder says why, the message says it too.
        let huge = TraceReplayer.replay([Self.openLong, #"{"type":"fill","x":1e999}"#, #"{"type":"fill","position":}"#].joined(separator: "\n"))
        #expect(huge.rejected.map(\.error.message) == ["not valid JSON (Number 1e999 is not representable in Swift)",
                                                        "not valid JSON (Invalid value around character 26)"], "\(huge.rejected)")
    }

    @Test("a protective order left on the position's own side is cancelled while its role waits for fills (a flip and back)",
          arguments: [ReplayOptions(), ReplayOptions(nativeModify: false), ReplayOptions(nativeModify: false, strategy: .createThenCancel)])
    func sameSideOrderGoesWhileTheRoleWaits(options: ReplayOptions) throws {
        // Short 30; the target's resizes and cancels are answered "too late"; a stop fill and a
        // target fill take it to long 2 (a sell target of 2 is placed), an entry fill back to short 18.
        let lines = [
            "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"SPY\",\"side\":\"sell\",\"quantity\":\"100\",\"stopLoss\":\"484\",\"takeProfit\":\"437\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"30\",\"price\":\"450\",\"execId\":\"E1\"}",
            "{\"type\":\"brokerFault\",\"operation\":\"modify\",\"count\":3,\"kind\":\"tooLate\",\"position\":\"P1\",\"role\":\"takeProfit\"}",
            "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":3,\"kind\":\"tooLate\",\"position\":\"P1\",\"role\":\"takeProfit\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"10\",\"price\":\"484\",\"execId\":\"E2\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"22\",\"price\":\"437\",\"execId\":\"E3\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"20\",\"price\":\"440\",\"execId\":\"E4\"}",
        ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: options)
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == -18)
        #expect(!position.orders.contains { $0.status.isLive && $0.role.isProtective && $0.side == .sell }, "a sell would add to the short: \(position.orders)")
        #expect(position.liveOrder(.stopLoss)?.openQuantity == 18)
    }

    @Test("an order the broker answered 'too late' for shows as awaiting its fills, not as working")
    func tooLateOrderShowsAsAwaitingFills() throws {
        let lines = [Self.openLong, Self.fill("entry", "300", "E1"),
                     "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":3,\"kind\":\"tooLate\",\"role\":\"takeProfit\"}",
                     Self.fill("stopLoss", "100", "E2")]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: ReplayOptions(nativeModify: false, strategy: .createThenCancel))
        let targets = report.positions.first?.orders.filter { $0.role == .takeProfit } ?? []
        #expect(targets.map(\.status) == [.awaitingFills, .cancelled], "the old target filled at the broker, its fills are awaited: \(targets)")
        // Its replacement of 200 goes: the waiting 300 covers more than the position whichever
        // way the answer is (filled: the position is short 100 once its fills come; not: it is live).
        #expect(targets.map(\.openQuantity) == [300, 0], "\(targets)")
        #expect(report.json.contains("\"status\":\"awaitingFills\""))
        #expect(report.alerts.map(\.kind) == [.fillsOverdue])
    }

    @Test("a decimal in an odd form is refused, not guessed at; zeros past the eighth place are not an odd form")
    func oddDecimalForms() throws {
        let odd = [" 1", "+1", ".5", "5.", "1 "]
        let lines = [Self.openLong] + odd.enumerated().map { Self.fill("entry", $0.element, "E\($0.offset)") }
            + [Self.fill("entry", "1.000000000", "E9")]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.map(\.line) == [2, 3, 4, 5, 6])
        #expect(report.rejected.allSatisfy { $0.error.code == .invalidQuantity && $0.error.message.contains("plain decimal") })
        #expect(report.rejected[1].error.message.hasSuffix("got '+1'"))
        #expect(report.positions.first?.netQuantity == 1)
    }

    @Test("a 'too late' answer whose fills never come: the replay's retry sends the work again and the stop ends right-sized")
    func tooLateWithoutFills() throws {
        let lines = [Self.openLong, Self.fill("entry", "100", "E1"),
                     "{\"type\":\"brokerFault\",\"operation\":\"modify\",\"count\":1,\"kind\":\"tooLate\",\"position\":\"P\",\"role\":\"stopLoss\"}",
                     Self.fill("entry", "100", "E2"), Self.fill("entry", "100", "E3")]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.positions.first?.netQuantity == 300)
        #expect(report.positions.first?.liveOrder(.stopLoss)?.openQuantity == 300)
        #expect(report.positions.first?.liveOrder(.takeProfit)?.openQuantity == 300)
        #expect(report.alerts.isEmpty && report.violations.isEmpty && report.unsettled.isEmpty)
    }

    @Test("a stop whose cancels all timed out (they took effect) shows as pending cancel, not working; unused faults are named",
          arguments: [SymbolStateMachine.ReplaceStrategy.cancelThenCreate, .createThenCancel])
    func timedOutCancelsShowAsPendingCancel(strategy: SymbolStateMachine.ReplaceStrategy) throws {
        let lines = [Self.openLong, Self.fill("entry", "300", "E1"),
                     "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":3,\"kind\":\"timedOut\",\"position\":\"P\",\"role\":\"stopLoss\"}",
                     "{\"type\":\"brokerFault\",\"operation\":\"submit\",\"count\":2,\"kind\":\"permanent\",\"position\":\"P9\",\"role\":\"stopLoss\"}",
                     Self.fill("scaleIn", "100", "E2", index: 0)]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: ReplayOptions(nativeModify: false, strategy: strategy))
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == 400)
        let stops = position.liveOrders.filter { $0.role == .stopLoss }
        // The old stop (300) may be gone at the broker: never reported working.
        #expect(stops.contains { $0.openQuantity == 300 && $0.status == .pendingCancel }, "\(stops)")
        #expect(!stops.contains { $0.openQuantity == 300 && $0.status == .working })
        #expect(report.alerts.contains { $0.kind == .operationFailed && $0.role == .stopLoss && $0.message.contains("cancel failed 3 times") })
        #expect(report.json.contains("\"status\":\"pendingCancel\""))
        #expect(report.unusedFaults == ["line 4: 2 of 2 scripted submit permanent faults (position P9, role stopLoss) never met an operation"])
        #expect(report.notices.contains { $0.hasPrefix("unused: line 4:") })
        #expect(!report.json.contains("unused"), "the contract JSON keeps its fields")
    }

    @Test("a whole-number field takes a number as written, not as a Double rounds it (0.99999999999999999 is not 1; 1.0 is); a fault's position must be a name a bracket can have")
    func wholeNumbersAndFaultPositionsAreNotGuessed() throws {
        let twoScaleIns = Self.openLong.replacingOccurrences(of: "[{\"quantity\":\"100\",\"limit\":\"246\"}]",
                                                             with: "[{\"quantity\":\"100\",\"limit\":\"246\"},{\"quantity\":\"100\",\"limit\":\"247\"}]")
        let scaleIn = "\"role\":\"scaleIn\""
        let nearlyOne: String = Self.fill("scaleIn", "100", "E1").replacingOccurrences(of: scaleIn, with: scaleIn + ",\"index\":0.99999999999999999")
        let oneWithFraction: String = Self.fill("scaleIn", "100", "E2").replacingOccurrences(of: scaleIn, with: scaleIn + ",\"index\":1.0")
        let fault = "{\"type\":\"brokerFault\",\"operation\":\"modify\",\"kind\":\"transient\","
        var lines: [String] = [twoScaleIns, nearlyOne]
        lines.append(fault + "\"count\":0.99999999999999999}")
        lines.append(fault + "\"count\":1,\"position\":\"\"}")
        lines.append(fault + "\"count\":1,\"position\":\"P \"}")
        lines.append(oneWithFraction)
        let report = TraceReplayer.replay(lines.joined(separator: "\n"))
        #expect(report.rejected.map(\.line) == [2, 3, 4, 5], "\(report.rejected)")
        #expect(report.rejected.allSatisfy { $0.error.code == .malformed }, "\(report.rejected)")
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == 100, "only the fill of scale-in 1 (index 1.0) counts")
        #expect(position.liveOrders.first { $0.role == .scaleIn(0) }?.openQuantity == 100, "scale-in 0 never filled")
        #expect(!position.liveOrders.contains { $0.role == .scaleIn(1) }, "scale-in 1 filled whole")
        #expect(report.unusedFaults.isEmpty, "\(report.unusedFaults)")
    }

    @Test("faults that never run out are cut off and reported as unsettled, not passed off as a final state")
    func endlessFaultsAreReported() throws {
        let lines = [Self.openLong, "{\"type\":\"brokerFault\",\"operation\":\"submit\",\"count\":999999999,\"kind\":\"transient\"}",
                     Self.fill("entry", "100", "E1")]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: ReplayOptions(maxAttempts: 2_000_000_000))
        #expect(report.unsettled.count == 1)
        #expect(report.unsettled.first?.hasPrefix("line 3: GLD: stopped after 100000 broker steps") == true, "the fill's line")
        #expect(report.notices.contains { $0.hasPrefix("unsettled: line 3: GLD") })
        #expect(report.text.contains("unsettled: line 3: GLD"))
        #expect(!report.json.contains("unsettled"), "the contract JSON keeps its fields")
    }

    @Test("replay's flipped-position cover: bracket re-places both orders on the new side, stopLossOnly the stop alone",
          arguments: [FlippedPositionCover.bracket, .stopLossOnly])
    func flippedPositionCover(cover: FlippedPositionCover) throws {
        let lines = [
            "{\"type\":\"open\",\"position\":\"P1\",\"symbol\":\"AAA\",\"side\":\"buy\",\"quantity\":\"100\",\"entry\":{\"type\":\"market\"},\"stopLoss\":\"90\",\"takeProfit\":\"110\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"entry\",\"quantity\":\"100\",\"price\":\"100\",\"execId\":\"E1\"}",
            "{\"type\":\"brokerFault\",\"operation\":\"cancel\",\"count\":1,\"kind\":\"permanent\",\"position\":\"P1\",\"role\":\"stopLoss\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"takeProfit\",\"quantity\":\"100\",\"price\":\"110\",\"execId\":\"E2\"}",
            "{\"type\":\"fill\",\"position\":\"P1\",\"role\":\"stopLoss\",\"quantity\":\"40\",\"price\":\"90\",\"execId\":\"E3\"}",
        ]
        let report = TraceReplayer.replay(lines.joined(separator: "\n"), options: ReplayOptions(flippedPositionCover: cover))
        #expect(report.rejected.isEmpty && report.violations.isEmpty, "\(report.rejected) \(report.violations)")
        let position = try #require(report.positions.first)
        #expect(position.netQuantity == -40, "the stop its cancel missed filled 40: short 40")
        let buys = position.liveOrders.filter { $0.side == .buy }
        #expect(buys.filter { $0.role == .stopLoss }.map(\.openQuantity) == [40], "\(position.liveOrders)")
        #expect(buys.filter { $0.role == .takeProfit }.map(\.openQuantity) == (cover == .bracket ? [40] : []), "\(position.liveOrders)")
        #expect(report.alerts.contains { $0.kind == .positionFlipped })
    }
}
