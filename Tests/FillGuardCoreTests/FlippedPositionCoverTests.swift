import FillGuardCore
import Testing

/// A late fill can take a position through flat to the side opposite its bracket's. The bracket's
/// prices are then on the wrong side of the market for it: under `.bracket` both protective
/// orders go on (rules 2 and 7 as written; both may execute), under `.stopLossOnly` the stop alone.
@Suite("Flipped positions: how they are covered")
struct FlippedPositionCoverTests {
    static let sides: [Side] = [.buy, .sell]

    private func flipped(_ side: Side, cover: FlippedPositionCover, spec: BracketSpec? = nil) throws -> ModelBroker {
        var model = ModelBroker("GLD", .init(flippedPositionCover: cover))
        try model.open(spec ?? .test(side))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        // The take-profit fills whole (flat); before its cancel lands the stop fills 100 too.
        let stop = try #require(model.live("P1", .stopLoss))
        try model.fill("P1", .takeProfit, 300, at: side == .buy ? "110" : "90")
        try model.fill(stop.id, 100, at: Price(side == .buy ? "95" : "105")!)
        model.settle()
        return model
    }

    @Test("stopLossOnly: a flipped position is covered by its stop-loss alone, at the bracket's price, on the new side", arguments: sides)
    func stopAloneCoversTheFlip(side: Side) throws {
        let model = try flipped(side, cover: .stopLossOnly)
        let snapshot = model.snapshot("P1")
        #expect(snapshot.netQuantity == (side == .buy ? -100 : 100))
        #expect(snapshot.isFlippedAgainstBracket)
        let newSide = side // a long bracket flipped short is covered by a buy, and the other way round
        let stops = model.brokerLive("P1", .stopLoss)
        #expect(stops.map(\.1.open) == [100] && stops.map(\.1.side) == [newSide], "\(stops)")
        #expect(model.live("P1", .stopLoss)?.type.displayPrice == Price(side == .buy ? "95" : "105"))
        #expect(model.brokerLive("P1", .takeProfit).isEmpty, "no take-profit: beside the stop it would execute at once too")
        #expect(model.live("P1", .takeProfit) == nil)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty, "\(model.machine.invariantViolations(atQuiescence: true))")
        #expect(snapshot.protectivePrice(.takeProfit, cover: .stopLossOnly) == nil)
        #expect(snapshot.protectivePrice(.takeProfit, cover: .bracket) == Price(side == .buy ? "110" : "90"))
        let alert = try #require(model.alerts.first { $0.kind == .positionFlipped })
        #expect(alert.message.contains("covered by its stop-loss alone"), "\(alert.message)")
    }

    @Test("bracket (the default): the same flip gets both orders again at the bracket's prices, as rule 7 says", arguments: sides)
    func bracketCoverPlacesBoth(side: Side) throws {
        let model = try flipped(side, cover: .bracket)
        expectProtected(model)
        #expect(model.brokerLive("P1", .takeProfit).map(\.1.open) == [100])
        let alert = try #require(model.alerts.first { $0.kind == .positionFlipped })
        #expect(!alert.message.contains("alone"), "\(alert.message)")
        #expect(SymbolStateMachine.Configuration().flippedPositionCover == .bracket)
    }

    @Test("stopLossOnly: the stop closes the flip and nothing is left; a fill back to the bracket's side brings the take-profit back", arguments: sides)
    func flipClosesOrReturns(side: Side) throws {
        var closing = try flipped(side, cover: .stopLossOnly)
        try closing.fill("P1", .stopLoss, 100, at: side == .buy ? "96" : "104")
        closing.settle()
        #expect(closing.snapshot("P1").status == .closed)
        expectProtected(closing)

        // Back to the bracket's side: the scale-in, its cancel not yet through, fills late.
        var model = ModelBroker("GLD", .init(flippedPositionCover: .stopLossOnly))
        try model.open(.test(side))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        let scaleIn = try #require(model.live("P1", .scaleIn(0)))
        let stop = try #require(model.live("P1", .stopLoss))
        try model.fill("P1", .takeProfit, 300, at: side == .buy ? "110" : "90")
        try model.fill(stop.id, 100, at: Price(side == .buy ? "95" : "105")!)
        // Flipped (net 100 the other way); the scale-in, too late to cancel, fills 300.
        try model.fill(scaleIn.id, 300, at: Price(side == .buy ? "98" : "102")!)
        model.settle()
        #expect(model.snapshot("P1").netQuantity == (side == .buy ? 200 : -200))
        expectProtected(model)
        #expect(model.live("P1", .takeProfit)?.type.displayPrice == Price(side == .buy ? "110" : "90"), "back at the bracket's price")
    }

    @Test("stopLossOnly: a take-profit found live at the broker for a flipped position is not adopted: it is cancelled", arguments: sides)
    func adoptedTargetOfAFlipIsCancelled(side: Side) throws {
        var model = try flipped(side, cover: .stopLossOnly)
        let net = model.snapshot("P1").netQuantity
        let protective: Side = net.units > 0 ? .sell : .buy
        var actions: [SymbolStateMachine.Action] = []
        let adopted = model.machine.adopt("STRAY-1", side: protective, type: .limit(Price(side == .buy ? "110" : "90")!),
                                          quantity: 100, filled: 0, emitting: &actions)
        #expect(adopted)
        let work = model.pull()
        #expect(work.contains { $0.kind == .cancel && $0.orderID == "STRAY-1" }, "\(work)")
    }

    @Test("the invariant check follows the cover: a take-profit live on a flipped position breaks rule 2 under stopLossOnly", arguments: sides)
    func invariantsFollowTheCover(side: Side) throws {
        let model = try flipped(side, cover: .bracket)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
        let strict = SymbolStateMachine(restoring: model.machine.image, configuration: .init(flippedPositionCover: .stopLossOnly))
        let found = strict.invariantViolations(atQuiescence: true)
        #expect(found.map(\.rule) == [2], "\(found)")
        #expect(found.first?.message.contains("no takeProfit is wanted") == true, "\(found)")
    }
}
