import FillGuardCore
import Testing

/// A protective order whose resize up fails for good is replaced create-then-cancel style; these
/// are the interleavings around that replacement (each failed before its fix).
@Suite("A failed resize up replaced: refusals, shrinks and timeouts around the replacement")
struct FailedResizeUpReplacementTests {
    private static func stopCoverAtBroker(_ model: ModelBroker) -> Quantity {
        model.brokerLive("P1", .stopLoss).filter { $0.1.side == .sell }.reduce(Quantity.zero) { $0 + $1.1.open }
    }

    /// Answers the broker's requests one at a time until none is left (at most 50), returning
    /// the stop cover at the broker before the first answer and after each one.
    private static func stopCoversAnsweringOneByOne(_ model: inout ModelBroker) -> [Quantity] {
        var covers = [stopCoverAtBroker(model)]
        for _ in 0..<50 {
            model.pull()
            if model.inFlight.isEmpty { break }
            model.complete(0)
            covers.append(stopCoverAtBroker(model))
        }
        return covers
    }

    /// The stop's modify up (300 -> 600) fails for good; while the replacement (600) is being
    /// placed the target fills 400 (net 200). The replacement is refused. The old stop (300) now
    /// covers more than the position: it is brought down to 200 by a modify (the broker refused
    /// the new order, never a resize down); cancelling it left the position without a stop.
    @Test("replacement refused after a fill shrank the position: the old stop is brought down by a modify, not cancelled (it was, leaving no stop until the re-arm)",
          arguments: [SymbolStateMachine.ReplaceStrategy.cancelThenCreate, .createThenCancel])
    func refusedReplacementAfterShrinkLeavesNoStop(strategy: SymbolStateMachine.ReplaceStrategy) throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy, .init(replaceStrategy: strategy))
        model.complete(modify, failing: .permanent("replace not supported for this order"))
        let submit = try #require(model.pull().first { $0.role == .stopLoss && $0.kind == .submit })
        // The target (600 at the broker) fills 400 while the replacement travels.
        try model.fill("P1", .takeProfit, 400, at: "110")
        #expect(model.snapshot("P1").netQuantity == 200)
        model.complete(try #require(model.inFlight.firstIndex(of: submit)), failing: .permanent("stop price outside band"))
        model.settle() // every answer in; the broker takes every modify and cancel; no re-arm yet
        #expect(model.snapshot("P1").netQuantity == 200)
        let live = model.brokerLive("P1", .stopLoss)
        #expect(Self.stopCoverAtBroker(model) == 200,
                "net 200 long, stop cover at the broker: \(live.map { "\($0.0) \($0.1.open)" }); old stop \(stop.id) live: \(model.truth[stop.id]?.live == true); sent: \(model.sent.filter { $0.role == .stopLoss }.map { "\($0)" })")
    }

    /// The stop's modify up (300 -> 600) times out after the broker applied it (the broker now
    /// holds the stop at 600, the machine knows it may), and the retry is refused for good. No
    /// new stop of 600 goes beside it (1,200 of stop for a long of 600: a triggered stop would
    /// sell it twice); the role waits for the re-arm, whose modify settles the size.
    @Test("a modify up that timed out after it was applied, then refused: no replacement beside a stop that may already cover the position (it doubled the cover)",
          arguments: [SymbolStateMachine.ReplaceStrategy.cancelThenCreate, .createThenCancel])
    func appliedTimeoutThenRefusalDoublesCover(strategy: SymbolStateMachine.ReplaceStrategy) throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy, .init(replaceStrategy: strategy))
        model.complete(modify, failing: .timedOut("no answer"), applied: true)
        #expect(model.truth[stop.id]?.quantity == 600, "the broker holds the stop at 600")
        model.fireRetries()
        model.pull()
        let again = try #require(model.inFlight.firstIndex { $0.orderID == stop.id && $0.kind == .modify })
        model.complete(again, failing: .permanent("replace rejected: order pending"))
        // Answer everything one at a time, watching the cover at the broker between answers.
        let worst = Self.stopCoversAnsweringOneByOne(&model).max() ?? .zero
        // The design accepts, for one round trip, the old order's cover beside the new one's
        // (300 + 600 = 900 when the old stop is known short); here the old one may already hold 600.
        #expect(worst <= 900, "stop cover at the broker reached \(worst) for a long of 600: \(model.sent.filter { $0.role == .stopLoss }.map { "\($0)" })")
    }

    /// The replacement (600) is live; the old stop's (300) cancel is refused. The live, full-size
    /// replacement is cancelled and the short one kept (300 of 600) as the role's order: the
    /// re-arm resizes or replaces it without first cancelling it (it did, with cancelThenCreate:
    /// no stop at all for a round trip).
    @Test("old stop's cancel refused: the replacement goes, the short stop stays the role's order, and the re-arm never leaves the role without a stop",
          arguments: [SymbolStateMachine.ReplaceStrategy.cancelThenCreate, .createThenCancel])
    func refusedCancelOfOldStop(strategy: SymbolStateMachine.ReplaceStrategy) throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(.buy, .init(replaceStrategy: strategy))
        model.complete(modify, failing: .permanent("replace not supported for this order"))
        let submit = try #require(model.pull().first { $0.role == .stopLoss && $0.kind == .submit })
        model.complete(try #require(model.inFlight.firstIndex(of: submit)))
        let cancel = try #require(model.pull().first { $0.orderID == stop.id && $0.kind == .cancel })
        model.complete(try #require(model.inFlight.firstIndex(of: cancel)), failing: .permanent("order is being triggered"))
        model.settle()
        #expect(Self.stopCoverAtBroker(model) == 300, "as designed: the replacement goes, the short stop stays until the re-arm")
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        let minimum = Self.stopCoversAnsweringOneByOne(&model).min() ?? .zero
        #expect(minimum > 0, "after the re-arm the stop cover at the broker fell to \(minimum) for a long of 600")
    }

    /// The same for either role, long and short: the role's modify up (300 -> 600) is refused,
    /// the OTHER protective order (resized to 600) fills 400 while the replacement travels, the
    /// replacement is refused: the role's old order is brought down to the net of 200.
    @Test("replacement refused after a fill shrank the position, either role, long and short: the role covers the smaller position",
          arguments: [Side.buy, .sell], [OrderRole.stopLoss, .takeProfit])
    func refusedReplacementAfterShrinkEitherRole(side: Side, role: OrderRole) throws {
        let other: OrderRole = role == .stopLoss ? .takeProfit : .stopLoss
        var model = ModelBroker("GLD")
        try model.open(.test(side))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        let old = try #require(model.live("P1", role))
        try model.fill("P1", .scaleIn(0), 300, at: side == .buy ? "98" : "102")
        model.pull()
        while let index = model.inFlight.firstIndex(where: { $0.role == other }) { model.complete(index) }
        let modify = try #require(model.inFlight.firstIndex { $0.orderID == old.id && $0.kind == .modify })
        model.complete(modify, failing: .permanent("replace not supported for this order"))
        let submit = try #require(model.pull().first { $0.role == role && $0.kind == .submit })
        try model.fill("P1", other, 400, at: side == .buy ? (other == .stopLoss ? "95" : "110") : (other == .stopLoss ? "105" : "90"))
        model.complete(try #require(model.inFlight.firstIndex(of: submit)), failing: .permanent("price outside band"))
        model.settle()
        let net = model.snapshot("P1").netQuantity
        #expect(net.magnitude == 200)
        let cover = model.brokerLive("P1", role).reduce(Quantity.zero) { $0 + $1.1.open }
        #expect(cover == 200, "\(side) \(role): net \(net), \(role) cover at the broker \(cover)")
    }

    /// The stop's modify up (300 -> 600) is refused; the replacement's submit times out after the
    /// broker placed it; its resend is in flight when a fill of the replacement arrives (so the
    /// machine knows it is live); the resend is then refused ("duplicate ClOrdID", as a FIX venue
    /// answers a resend of a placed order). The refusal changes nothing: the replacement is live
    /// and the old stop is cancelled (both stayed live, frozen until the re-arm: 300 + 500 of
    /// stop for a long of 500).
    @Test("replacement placed (its fill proves it) and its resend refused: the refusal changes nothing, the old stop goes (both stayed: double cover)",
          arguments: [SymbolStateMachine.ReplaceStrategy.cancelThenCreate, .createThenCancel], [Side.buy, .sell])
    func placedReplacementWithRefusedResendKeepsBoth(strategy: SymbolStateMachine.ReplaceStrategy, side: Side) throws {
        var (model, _, modify) = try ModelBroker.stopResizeInFlight(side, .init(replaceStrategy: strategy))
        model.complete(modify, failing: .permanent("replace not supported for this order"))
        let submit = try #require(model.pull().first { $0.role == .stopLoss && $0.kind == .submit })
        model.complete(try #require(model.inFlight.firstIndex(of: submit)), failing: .timedOut("no answer"), applied: true)
        model.fireRetries()
        let resend = try #require(model.pull().first { $0.orderID == submit.orderID && $0.kind == .submit })
        // The replacement (600 at the broker) fills 100 while its resend travels.
        try model.fill(submit.orderID, 100, at: Price(side == .buy ? "95" : "105")!)
        model.complete(try #require(model.inFlight.firstIndex(of: resend)), failing: .permanent("duplicate ClOrdID"))
        model.settle() // no re-arm
        let net = model.snapshot("P1").netQuantity
        let protective: Side = net.units > 0 ? .sell : .buy
        let live = model.brokerLive("P1", .stopLoss).filter { $0.1.side == protective }
        let cover = live.reduce(Quantity.zero) { $0 + $1.1.open }
        #expect(net.magnitude == 500)
        #expect(cover <= net.magnitude, "net \(net), stop cover at the broker \(cover): \(live.map { "\($0.0) \($0.1.open)" }); alerts: \(model.alerts.map(\.message))")
    }
}
