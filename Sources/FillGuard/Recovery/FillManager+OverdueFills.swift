import FillGuardCore

extension FillManager {
    /// Asks the broker for `symbol`'s executions and applies those FillGuard has not booked, as
    /// recovery does (by execution id, the broker's cumulative quantities, and per order by
    /// quantity once old ids left the window): fills a "too late" answer announced whose reports
    /// never came, or reports a session lost. Returns the corrections made, which also go to
    /// `corrections()`; none when the broker answers no queries (`BrokerQueries`), the symbol has
    /// no lane, or the manager is not running. The manager does this on its own for a symbol
    /// whose order's fills are overdue (the `fillsOverdue` alert).
    public func reconcileFills(of symbol: Symbol) async -> [ReconciliationCorrection] {
        guard context.lifecycle.load(ordering: .relaxed) == .running, let broker = context.broker as? any BrokerQueries,
              let lane = lane(for: symbol, create: false) else { return [] }
        var corrections: [ReconciliationCorrection] = []
        _ = await adoptMissingFills(on: lane, from: broker, live: true) { correction in
            corrections.append(correction)
            publish(correction)
        }
        // An order still waiting for the fills of a "too late" that the broker has none of: asked
        // where it stands. One the broker still works was answered wrongly: it is live, and is
        // resized, replaced or cancelled as the position needs (else it would stay beside its
        // replacement, or over a position that shrank, until fills that never come). Once per
        // order: a broker that answers "too late" again for it is left to the alert.
        for id in await read(lane, { $0.ordersAwaitingFills }) where !context.liveAfterTooLate.withLock({ $0.contains(id) }) {
            let state: BrokerOrderState?
            do throws(BrokerError) {
                state = try await asking { () async throws(BrokerError) in try await broker.orderState(id, symbol: symbol) }
            } catch {
                let correction = ReconciliationCorrection(kind: .notReconciled, symbol: symbol, orderID: id, message: "the order could not be read: \(error)")
                corrections.append(correction)
                publish(correction)
                continue
            }
            guard let state, state.status.isLive, context.liveAfterTooLate.withLock({ $0.insert(id).inserted }) else { continue }
            let correction = ReconciliationCorrection(kind: .resolvedOperation, symbol: symbol, orderID: id,
                                                      message: "the broker works this order (\(state.quantity), \(state.filled) filled), which it had answered \"too late\"; it is live, and planned again")
            corrections.append(correction)
            publish(correction)
            lane.enqueue(.brokerQuantity(id, state.quantity))
        }
        return corrections
    }

    /// The lane's hook for a `fillsOverdue` alert: one reconciliation of the symbol's fills at a
    /// time, counted as work (so `waitUntilIdle()` waits for it and for the fills it applies).
    func reconcileOverdueFills(of symbol: Symbol) {
        guard context.broker is any BrokerQueries, context.lifecycle.load(ordering: .relaxed) == .running,
              context.overdueReconciliations.withLock({ running in
                  // One running already may have read the executions before this alert's fills
                  // were made: it runs once more when done.
                  guard running[symbol] == nil else { running[symbol] = true; return false }
                  running[symbol] = false
                  return true
              }) else { return }
        context.work.begin()
        Task {
            repeat {
                _ = await self.reconcileFills(of: symbol)
            } while self.context.overdueReconciliations.withLock({ running in
                guard running[symbol] == true else { running[symbol] = nil; return false }
                running[symbol] = false
                return true
            })
            self.context.work.end()
        }
    }

    /// The lane's hook for a `brokerCorrection` alert about an order: the broker is asked how the
    /// order stands, and a live order whose size differs from FillGuard's (a replace sent before
    /// a restart that took effect only after recovery settled it, or one FillGuard never sent)
    /// is taken at the broker's size and planned again, so a protective order comes back to the
    /// position (a `sizeDiffers` correction). Counted as work, as `reconcileOverdueFills` is.
    func reconcileCorrectedOrder(_ id: OrderID, of symbol: Symbol) {
        guard let broker = context.broker as? any BrokerQueries, context.lifecycle.load(ordering: .relaxed) == .running,
              let lane = lane(for: symbol, create: false) else { return }
        context.work.begin()
        Task {
            defer { self.context.work.end() }
            // The order as FillGuard has it, settled (no operation of its own in flight, whose
            // answer decides the size): read before the broker is asked and again after, so that
            // an answer older than a change FillGuard made meanwhile is never taken.
            let settled: @Sendable (SymbolStateMachine) -> Quantity? = { machine in
                guard let order = machine.snapshot(of: id), order.status == .working || order.status == .partiallyFilled else { return nil }
                return order.quantity
            }
            guard let before = await self.read(lane, settled) else { return }
            let state: BrokerOrderState?
            do throws(BrokerError) {
                state = try await self.asking { () async throws(BrokerError) in try await broker.orderState(id, symbol: symbol) }
            } catch {
                self.publish(ReconciliationCorrection(kind: .notReconciled, symbol: symbol, orderID: id,
                                                      message: "after the broker's correction, the order could not be read: \(error)"))
                return
            }
            guard let state, state.status.isLive else { return }
            guard let known = await self.read(lane, settled), known == before, known != state.quantity else { return }
            self.publish(ReconciliationCorrection(kind: .sizeDiffers, symbol: symbol, orderID: id,
                                                  message: "after the broker's correction: the broker has \(state.quantity), FillGuard had \(known); the broker's size is taken and the order planned again"))
            lane.enqueue(.brokerQuantity(id, state.quantity))
        }
    }
}
