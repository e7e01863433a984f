import FillGuardCore
import Testing

/// A protective order whose resize up failed for good is replaced: what must hold around the replacement.
@Suite("A failed resize up replaced: probes around the replacement")
struct FailedResizeUpProbesTests {
    @Test("a venue refusing every stop modify and every new stop: each re-arm costs at most a modify and a submit; the old stop is never cancelled",
          arguments: [SymbolStateMachine.ReplaceStrategy.cancelThenCreate, .createThenCancel])
    func pacedByRearm(strategy: SymbolStateMachine.ReplaceStrategy) throws {
        var (model, stop, _) = try ModelBroker.stopResizeInFlight(.buy, .init(replaceStrategy: strategy))
        func drain(_ model: inout ModelBroker) {
            for _ in 0..<100 {
                model.pull()
                guard !model.inFlight.isEmpty else { return }
                let op = model.inFlight[0]
                if op.role == .stopLoss, op.kind != .cancel { model.complete(0, failing: .permanent("refused")) } else { model.complete(0) }
            }
        }
        drain(&model)
        for round in 0..<5 {
            let before = model.sent.count
            var actions: [SymbolStateMachine.Action] = []
            model.machine.rearm("P1", emitting: &actions)
            drain(&model)
            #expect((1...2).contains(model.sent.count - before), "round \(round): \(model.sent[before...].map { "\($0)" })")
            #expect(model.truth[stop.id]?.live == true)
        }
        #expect(!model.sent.contains { $0.orderID == stop.id && $0.kind == .cancel })
    }

    @Test("replacement live, the old stop fills whole while its cancel travels (too late): the replacement is brought to the new net", arguments: [Side.buy, .sell])
    func oldStopFillsDuringCancel(side: Side) throws {
        var (model, stop, modify) = try ModelBroker.stopResizeInFlight(side)
        model.complete(modify, failing: .permanent("replace not supported"))
        let submit = try #require(model.pull().first { $0.role == .stopLoss && $0.kind == .submit })
        model.complete(try #require(model.inFlight.firstIndex(of: submit)))
        let cancel = try #require(model.pull().first { $0.orderID == stop.id && $0.kind == .cancel })
        try model.fill(stop.id, 300, at: Price(side == .buy ? "95" : "105")!)
        model.complete(try #require(model.inFlight.firstIndex(of: cancel)))
        model.settle()
        expectProtected(model)
        #expect(model.snapshot("P1").netQuantity.magnitude == 300)
    }

    @Test("replacement in flight, the position goes flat: nothing is left live", arguments: [Side.buy, .sell])
    func flatWhileReplacementTravels(side: Side) throws {
        var (model, _, modify) = try ModelBroker.stopResizeInFlight(side)
        model.complete(modify, failing: .permanent("replace not supported"))
        _ = try #require(model.pull().first { $0.role == .stopLoss && $0.kind == .submit })
        try model.fill("P1", .takeProfit, 600, at: side == .buy ? "110" : "90")
        model.settle()
        #expect(model.snapshot("P1").status == .closed)
        expectProtected(model)
    }

    @Test("replacement in flight, more fills grow the position: the replacement follows, the old goes", arguments: [Side.buy, .sell])
    func growWhileReplacementTravels(side: Side) throws {
        var spec = BracketSpec.test(side)
        spec.scaleIns.append(.init(quantity: 200, type: .limit(Price(side == .buy ? "97" : "103")!)))
        var (model, _, modify) = try ModelBroker.stopResizeInFlight(side, spec: spec, answeringTheTarget: false)
        model.complete(modify, failing: .permanent("replace not supported"))
        _ = model.pull()
        try model.fill("P1", .scaleIn(1), 200, at: side == .buy ? "97" : "103")
        model.settle()
        expectProtected(model)
        #expect(model.snapshot("P1").netQuantity.magnitude == 800)
    }
}
