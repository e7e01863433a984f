import FillGuardCore
import Testing

/// A request that times out may or may not have taken effect at the broker. FillGuard must never
/// forget an order the broker may hold, nor refuse fills the broker may have made.
@Suite("Timeouts: outcomes not known")
struct TimeoutTests {
    /// A long 300 whose entry has filled, with the stop and target submits in flight (stop first).
    private func filledWithProtectionInFlight(_ configuration: SymbolStateMachine.Configuration = .init()) throws -> ModelBroker {
        var model = ModelBroker("GLD", configuration)
        try model.open(.test(.buy))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        let submits = model.pull()
        try #require(submits.map(\.role) == [.stopLoss, .takeProfit])
        return model
    }

    private func index(of role: OrderRole, in model: ModelBroker) throws -> Int {
        try #require(model.inFlight.firstIndex { $0.role == role })
    }

    @Test("a stop whose submit timed out but took effect is cancelled when the position goes flat")
    func timedOutSubmitIsCancelledWhenFlat() throws {
        var model = try filledWithProtectionInFlight()
        let stop = try #require(model.inFlight.first { $0.role == .stopLoss })
        model.complete(try index(of: .stopLoss, in: model), failing: .timedOut("no answer"), applied: true)
        model.complete(try index(of: .takeProfit, in: model))
        // The target fills whole while the stop's outcome is unknown: the position is flat.
        try model.fill("P1", .takeProfit, 300, at: "110")
        #expect(model.machine.snapshot(of: "P1")?.netQuantity == .zero)
        #expect(model.live("P1", .stopLoss) != nil, "the stop may be live at the broker: it is not forgotten")
        model.settle()
        #expect(model.sent.contains { $0.orderID == stop.orderID && $0.kind == .cancel }, "a cancel went out for it")
        #expect(model.brokerLive("P1", .stopLoss).isEmpty, "nothing is left working at the broker")
        #expect(model.alerts.isEmpty)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a 'too late' answer to the cancel of a stop whose submit timed out shows the broker has it: the cancel goes again")
    func tooLateCancelOfUnansweredSubmit() throws {
        var model = try filledWithProtectionInFlight()
        let stop = try #require(model.inFlight.first { $0.role == .stopLoss })
        model.complete(try index(of: .stopLoss, in: model), failing: .timedOut("no answer"), applied: true)
        model.complete(try index(of: .takeProfit, in: model))
        try model.fill("P1", .takeProfit, 300, at: "110")
        model.fireRetries()
        model.pull()
        let cancel = try #require(model.inFlight.firstIndex { $0.orderID == stop.orderID && $0.kind == .cancel })
        // "Too late", yet no fill comes: the broker still works the stop.
        model.complete(cancel, failing: .tooLate("too late to cancel"))
        #expect(model.retries == [stop.orderID])
        model.settle()
        #expect(model.sent.filter { $0.orderID == stop.orderID && $0.kind == .cancel }.count == 2, "the cancel went again")
        #expect(model.brokerLive("P1", .stopLoss).isEmpty, "nothing is left working at the broker")
        #expect(model.live("P1", .stopLoss) == nil)
        #expect(model.machine.isQuiescent)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a stop whose submit timed out and never arrived ends when the broker does not know it")
    func lostSubmitEndsOnUnknownOrder() throws {
        var model = try filledWithProtectionInFlight()
        let stop = try #require(model.inFlight.first { $0.role == .stopLoss })
        model.complete(try index(of: .stopLoss, in: model), failing: .timedOut("no answer"))
        model.complete(try index(of: .takeProfit, in: model))
        try model.fill("P1", .takeProfit, 300, at: "110")
        model.settle()
        let cancels = model.sent.filter { $0.orderID == stop.orderID && $0.kind == .cancel }
        #expect(cancels.count == 1, "one cancel; the broker's 'unknown order' settles it")
        #expect(model.machine.snapshot(of: "P1")?.orders.first { $0.id == stop.orderID }?.status == .cancelled)
        #expect(model.alerts.isEmpty)
        #expect(model.machine.isQuiescent)
    }

    @Test("a plain transient failure of a submit (never sent) still ends the order locally when flat")
    func transientSubmitEndsLocally() throws {
        var model = try filledWithProtectionInFlight()
        let stop = try #require(model.inFlight.first { $0.role == .stopLoss })
        model.complete(try index(of: .stopLoss, in: model), failing: .transient("throttled"))
        model.complete(try index(of: .takeProfit, in: model))
        try model.fill("P1", .takeProfit, 300, at: "110")
        model.settle()
        #expect(!model.sent.contains { $0.orderID == stop.orderID && $0.kind == .cancel }, "nothing to cancel: the broker refused it")
        #expect(model.machine.isQuiescent)
    }

    @Test("the resend after a timed-out submit repeats it exactly; the new size follows as a modify")
    func resendRepeatsTheFirstRequest() throws {
        var model = try filledWithProtectionInFlight()
        let stop = try #require(model.inFlight.first { $0.role == .stopLoss })
        model.complete(try index(of: .stopLoss, in: model), failing: .timedOut("no answer"), applied: true)
        model.complete(try index(of: .takeProfit, in: model))
        try model.fill("P1", .scaleIn(0), 100, at: "98")
        model.settle()
        let stopWork = model.sent.filter { $0.orderID == stop.orderID }.map(\.request)
        let submits = stopWork.compactMap { request -> Quantity? in
            if case .submit(let submit) = request { return submit.quantity } else { return nil }
        }
        #expect(submits == [300, 300], "the resend carries the first size, not the new one")
        #expect(stopWork.contains { if case .modify(let modify) = $0 { return modify.newQuantity == 400 } else { return false } })
        let atBroker = model.brokerLive("P1", .stopLoss)
        #expect(atBroker.count == 1 && atBroker.first?.1.open == 400, "one stop at the broker, for the whole 400")
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("fills up to the size of a modify that timed out are the broker's truth, not an overfill")
    func fillsUpToATimedOutModifyAreAccepted() throws {
        var model = try filledWithProtectionInFlight()
        model.settle()
        let stop = try #require(model.live("P1", .stopLoss))
        try model.fill("P1", .scaleIn(0), 300, at: "98")
        model.pull()
        let modify = try #require(model.inFlight.firstIndex { $0.orderID == stop.id })
        model.complete(modify, failing: .timedOut("no answer"), applied: true)
        // The broker holds the stop at 600 and fills 450 of it before any answer arrives.
        try model.fill(stop.id, 450, at: Price("95")!)
        #expect(model.machine.snapshot(of: "P1")?.netQuantity == 150)
        model.settle()
        #expect(model.brokerNet("P1") == 150)
        #expect(model.brokerLive("P1", .stopLoss).first?.1.open == 150)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    /// A position whose stop filled whole while the target's cancel timed out (`applied`: it took
    /// effect at the broker): returns the model and the target.
    private func targetCancelTimedOut(_ strategy: SymbolStateMachine.ReplaceStrategy = .cancelThenCreate,
                                      applied: Bool) throws -> (ModelBroker, OrderSnapshot) {
        var model = try filledWithProtectionInFlight(.init(replaceStrategy: strategy))
        model.settle()
        let target = try #require(model.live("P1", .takeProfit))
        try model.fill("P1", .stopLoss, 300, at: "95")
        model.pull()
        let cancel = try #require(model.inFlight.firstIndex { $0.orderID == target.id && $0.kind == .cancel })
        model.complete(cancel, failing: .timedOut("no answer"), applied: applied)
        return (model, target)
    }

    /// `targetCancelTimedOut` (the cancel took effect), then the position opened again by a
    /// scale-in fill of 300; the new work is not yet pulled.
    private func reopenedAfterTargetCancelTimedOut(_ strategy: SymbolStateMachine.ReplaceStrategy) throws -> (ModelBroker, OrderSnapshot) {
        var (model, target) = try targetCancelTimedOut(strategy, applied: true)
        try model.fill("P1", .scaleIn(0), 300, at: "98")
        return (model, target)
    }

    @Test("an order whose cancel timed out is never resized again; the role gets a new order",
          arguments: [SymbolStateMachine.ReplaceStrategy.cancelThenCreate, .createThenCancel])
    func timedOutCancelIsNotResurrected(strategy: SymbolStateMachine.ReplaceStrategy) throws {
        // The target's cancel timed out (it took effect); the position is open again and needs a target.
        var (model, target) = try reopenedAfterTargetCancelTimedOut(strategy)
        model.settle()
        #expect(!model.sent.contains { $0.orderID == target.id && $0.kind == .modify }, "no modify of an order that may be cancelled")
        let targets = model.brokerLive("P1", .takeProfit)
        #expect(targets.count == 1 && targets.first?.0 != target.id && targets.first?.1.open == 300)
        #expect(model.alerts.isEmpty)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a replacement refused for good does not bring back the order it replaced when that order's cancel timed out (it may be gone)")
    func refusedReplacementKeepsAMaybeCancelledOrderRetired() throws {
        // The target's cancel timed out (it took effect); the position is open again, and the new
        // target's submit is refused for good.
        var (model, target) = try reopenedAfterTargetCancelTimedOut(.createThenCancel)
        model.pull()
        let submit = try #require(model.inFlight.firstIndex { $0.role == .takeProfit && $0.kind == .submit })
        let replacement = model.inFlight[submit].orderID
        model.complete(submit, failing: .permanent("refused"))
        #expect(model.alerts.contains { $0.orderID == replacement }, "the refusal is alerted")
        // The old target is not taken as the position's target again: FillGuard keeps cancelling it
        // (the answer settles it: the broker no longer has it) and never resizes it.
        model.fireRetries()
        model.settle()
        #expect(!model.sent.contains { $0.orderID == target.id && $0.kind == .modify }, "no modify of an order that may be cancelled")
        #expect(model.machine.snapshot(of: "P1")?.orders.first { $0.id == target.id }?.status == .cancelled)
        #expect(model.live("P1", .takeProfit) == nil, "FillGuard believes no target is live, as at the broker")
        #expect(model.brokerLive("P1", .takeProfit).isEmpty)
        // Re-armed after the cool-down, the position gets a new target of its size.
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        let atBroker = model.brokerLive("P1", .takeProfit)
        #expect(atBroker.count == 1 && atBroker.first?.0 != target.id && atBroker.first?.1.open == 300)
        #expect(model.live("P1", .takeProfit)?.id == atBroker.first?.0)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("an order whose cancel timed out shows as pending cancel until an answer settles it; a refusal does not settle it")
    func timedOutCancelShowsPendingUntilSettled() throws {
        // The stop fills whole; the target's cancel goes out and times out (it did not take effect).
        var (model, target) = try targetCancelTimedOut(applied: false)
        #expect(model.machine.snapshot(of: target.id)?.status == .pendingCancel, "asked to cancel, not confirmed")
        // The retried cancel is refused for good: that does not say whether the first one took effect.
        model.fireRetries()
        model.pull()
        let retried = try #require(model.inFlight.firstIndex { $0.orderID == target.id && $0.kind == .cancel })
        model.complete(retried, failing: .permanent("order cannot be cancelled"))
        let order = try #require(model.machine.snapshot(of: target.id))
        #expect(order.status == .pendingCancel && order.failure != nil, "\(order)")
        #expect(model.alerts.contains { $0.orderID == target.id })
        // Re-armed after the cool-down, it is cancelled again, and that answer settles it.
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        #expect(model.machine.snapshot(of: target.id)?.status == .cancelled)
        #expect(model.brokerLive("P1", .takeProfit).isEmpty)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a refused cancel does not show that an earlier timed-out cancel failed: a replacement refused for good still does not bring the order back")
    func refusedCancelKeepsAMaybeCancelledOrderRetired() throws {
        // The target's cancel timed out and took effect; the retried cancel is refused for good (a
        // broker's own reason: it does not say the order is there).
        var (model, target) = try targetCancelTimedOut(.createThenCancel, applied: true)
        model.fireRetries()
        model.pull()
        let retried = try #require(model.inFlight.firstIndex { $0.orderID == target.id && $0.kind == .cancel })
        model.complete(retried, failing: .permanent("refused"))
        #expect(model.machine.snapshot(of: target.id)?.status == .pendingCancel)
        // The position opens again; the new target's submit is refused for good too.
        try model.fill("P1", .scaleIn(0), 300, at: "98")
        model.pull()
        let submit = try #require(model.inFlight.firstIndex { $0.role == .takeProfit && $0.kind == .submit })
        model.complete(submit, failing: .permanent("refused"))
        // The old target is not taken as the position's target again, and never resized.
        #expect(model.machine.snapshot(of: target.id)?.status == .pendingCancel, "still being cancelled, not the position's target")
        model.fireRetries()
        model.settle()
        #expect(!model.sent.contains { $0.orderID == target.id && $0.kind == .modify }, "no modify of an order that may be cancelled")
        // Re-armed after the cool-down: the old one is cancelled again (the answer settles it) and
        // the position has a target of its size, at the broker too.
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        #expect(model.machine.snapshot(of: target.id)?.status == .cancelled)
        let atBroker = model.brokerLive("P1", .takeProfit)
        #expect(atBroker.count == 1 && atBroker.first?.0 != target.id && atBroker.first?.1.open == 300)
        #expect(model.live("P1", .takeProfit)?.id == atBroker.first?.0)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("a submit that times out on every try is cancelled to settle, never taken as rejected; a new one follows",
          arguments: [false, true])
    func exhaustedTimeoutsSettleByCancelling(lastTookEffect: Bool) throws {
        var model = try filledWithProtectionInFlight()
        let stop = try #require(model.inFlight.first { $0.role == .stopLoss })
        model.complete(try index(of: .takeProfit, in: model))
        for attempt in 1...3 {
            model.complete(try index(of: .stopLoss, in: model), failing: .timedOut("no answer"), applied: lastTookEffect && attempt == 3)
            var actions: [SymbolStateMachine.Action] = []
            for id in model.retries { model.machine.retryDue(id, emitting: &actions) }
            model.retries.removeAll()
            if attempt < 3 { model.pull() }
        }
        #expect(model.alerts.contains { $0.orderID == stop.orderID })
        let order = model.machine.snapshot(of: "P1")?.orders.first { $0.id == stop.orderID }
        #expect(order?.status == .pendingNew, "it may be live at the broker: not rejected")
        let cancel = model.pull()
        #expect(cancel.map(\.kind) == [.cancel] && cancel.first?.orderID == stop.orderID, "a cancel settles where it stands")
        model.settle()
        #expect(model.machine.snapshot(of: "P1")?.orders.first { $0.id == stop.orderID }?.status == .cancelled)
        #expect(model.brokerLive("P1", .stopLoss).isEmpty, "no stop until the cool-down")
        // After the cool-down a new stop protects the position.
        var actions: [SymbolStateMachine.Action] = []
        model.machine.rearm("P1", emitting: &actions)
        model.settle()
        let atBroker = model.brokerLive("P1", .stopLoss)
        #expect(atBroker.count == 1 && atBroker.first?.0 != stop.orderID && atBroker.first?.1.open == 300)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }
}
