import FillGuardCore
import Logging
import Synchronization

extension FillManager {
    /// Rebuilds the state the journal holds (newest snapshot per symbol, then the records after
    /// it), then reconciles it with the broker: adopts fills made while down, resolves operations
    /// whose outcome is unknown by asking (never by blindly resending), applies orders that ended
    /// at the broker, resumes retries, handles unknown live orders per the configuration, and
    /// checks net positions. Every correction is reported. Call once, before any other input:
    /// with a journal, brackets and reports are refused (`journalUnavailable`) until it has
    /// rebuilt the state; a second call throws `alreadyRecovered`. When it throws because the
    /// journal cannot be read, nothing was rebuilt, and it may be called again.
    public func recover() async throws(JournalError) -> RecoveryReport {
        try await recover(beforeReconciling: {})
    }

    /// `recover()`, running `work` once the journal has been read and rebuilt and before the
    /// broker is asked anything: for work that must not happen when the journal cannot be read
    /// (a test exchange catching up on the time the manager was down, say).
    public func recover(beforeReconciling work: () async -> Void) async throws(JournalError) -> RecoveryReport {
        var report = RecoveryReport()
        guard let journal = context.journal else {
            await work()
            return report
        }
        let (began, stage) = context.lifecycle.compareExchange(expected: .awaitingRecovery, desired: .recovering, ordering: .sequentiallyConsistent)
        guard began else {
            throw stage == .stopped ? JournalError(.closed, "the manager was shut down") : JournalError(.alreadyRecovered, "recover() runs once, before any other input")
        }
        guard journal.claim(for: ObjectIdentifier(context)) else {
            _ = context.lifecycle.compareExchange(expected: .recovering, desired: .awaitingRecovery, ordering: .sequentiallyConsistent)
            throw JournalError(.inUse, "this Journal belongs to another FillManager; give each manager a journal of its own")
        }
        let clock = ContinuousClock()
        let started = clock.now
        let notices = NoticeList()
        let configuration = context.machineConfiguration
        var rebuilt: [(Symbol, LaneReplay)] = []
        do throws(JournalError) {
            let contents = try await journal.store.load(notices: { notices.append($0) })
            for (symbol, part) in contents.lanes.sorted(by: { $0.key < $1.key }) {
                rebuilt.append((symbol, try LaneReplay.rebuild(symbol, from: part, configuration: configuration)))
            }
        } catch {
            // Nothing was rebuilt: still awaiting recovery (unless shut down meanwhile).
            _ = context.lifecycle.compareExchange(expected: .recovering, desired: .awaitingRecovery, ordering: .sequentiallyConsistent)
            throw error
        }
        report.notices = notices.all
        for notice in report.notices { context.logger.warning("journal repaired: \(notice)") }
        for (symbol, replay) in rebuilt {
            report.symbols += 1
            report.snapshotsLoaded += replay.snapshotLoaded ? 1 : 0
            report.recordsReplayed += replay.replayed
            report.positions += replay.machine.positionIDs.count
            let lane = SymbolLane(symbol: symbol, context: context, machine: replay.machine, position: replay.position,
                                  holdingOperations: true)
            lanes.withLock { $0.set(lane, for: symbol) }
            context.positionSymbols.withLock { map in
                // Retired ones too: a new position under one of their ids would reuse its order
                // ids, which the broker may still hold (and take a submit of as the old order).
                for id in replay.machine.retiredPositionIDs where map[id] == nil { map[id] = symbol }
                for id in replay.machine.positionIDs { map[id] = symbol }
            }
        }
        context.metrics.journalRecords.increment(by: Int64(report.recordsReplayed))
        report.rebuildDuration = clock.now - started
        await work()

        let reconcileStarted = clock.now
        (report.corrections, report.heldSymbols) = await reconcile()
        report.unknownLiveOrders = context.unknownLiveOrders.withLock { $0 }
        report.reconcileDuration = clock.now - reconcileStarted
        // Inputs are taken from now on (unless the manager was shut down meanwhile).
        _ = context.lifecycle.compareExchange(expected: .recovering, desired: .running, ordering: .sequentiallyConsistent)
        context.logger.info("recovered", metadata: [
            "symbols": "\(report.symbols)", "records": "\(report.recordsReplayed)", "snapshots": "\(report.snapshotsLoaded)",
            "corrections": "\(report.corrections.count)",
        ])
        return report
    }

    /// What one lane's machine says reconciliation needs to look at.
    private struct LaneView: Sendable {
        var unresolved: [OrderOperation]
        var live: [OrderSnapshot]
        var awaitingRetry: [OrderID]
        var awaitingRearm: [PositionID]
        var net: Quantity
    }

    /// Reconciles every lane, then lets each send what it holds: only once the net check is
    /// done, so that nothing FillGuard sends (a market entry never sent before, which fills at
    /// once) moves the broker's positions while they are compared with the journal's. A lane
    /// whose position the broker contradicts in a way FillGuard's orders could make worse keeps
    /// holding them (returned), until `releaseHeldOperations(of:)`.
    private func reconcile() async -> (corrections: [ReconciliationCorrection], held: [Symbol]) {
        var held: Set<Symbol> = []
        let corrections = await reconcileHoldingOperations(held: &held)
        // Recorded before the other lanes are let go: only from now on can a hold be released.
        context.heldSymbols.withLock { $0 = held }
        for lane in allLanes() where !held.contains(lane.symbol) { lane.enqueue(.reconciled) }
        return (corrections, held.sorted())
    }

    /// Lets a symbol whose operations recovery held after a `positionMismatch`
    /// (`RecoveryReport.heldSymbols`) send them: for a person who has looked at the broker's
    /// account and wants FillGuard's orders placed as its own state says. False when the symbol
    /// is not held (never was, was released already, or recovery has not finished: nothing goes
    /// out while the positions are being compared).
    @discardableResult
    public func releaseHeldOperations(of symbol: Symbol) -> Bool {
        guard context.heldSymbols.withLock({ $0.remove(symbol) }) != nil, let lane = lane(for: symbol, create: false) else { return false }
        lane.enqueue(.reconciled)
        return true
    }

    /// Lets brackets open on `symbol` beside the live orders recovery found that no journal
    /// record knows (`RecoveryReport.unknownLiveOrders`): for a person who has looked at them.
    /// False when none are recorded for the symbol (never were, ended, or released already).
    @discardableResult
    public func releaseUnknownOrders(of symbol: Symbol) -> Bool {
        context.unknownLiveOrders.withLock { $0.removeValue(forKey: symbol) } != nil
    }

    /// The orders recovery left working on `symbol` (unknown to the journal) that the broker
    /// still works or that traded, each said with why ("O7"; "O7 (filled, 300 filled: …)", as
    /// its fills moved the broker's position without FillGuard; "O7 (not known: …)" when it could
    /// not be asked); those it says ended without a fill are forgotten.
    func unknownOrdersStillLive(on symbol: Symbol) async -> [String] {
        guard let ids = context.unknownLiveOrders.withLock({ $0[symbol] }) else { return [] }
        var live: [String] = []
        var ended: Set<OrderID> = []
        for id in ids {
            guard let broker = context.broker as? any BrokerQueries else {
                live.append(id.rawValue)
                continue
            }
            do throws(BrokerError) {
                let state = try await asking { () async throws(BrokerError) in try await broker.orderState(id, symbol: symbol) }
                if let state, state.status.isLive {
                    live.append(id.rawValue)
                } else if let state, !state.filled.isZero {
                    // It traded: the broker's position moved by fills FillGuard never booked.
                    live.append("\(id) (\(state.status.rawValue), \(state.filled) filled: the broker's position on \(symbol) moved without FillGuard)")
                } else {
                    ended.insert(id)
                }
            } catch {
                live.append("\(id) (not known: \(error))")
            }
        }
        if !ended.isEmpty {
            context.unknownLiveOrders.withLock { orders in
                guard let left = orders[symbol]?.filter({ !ended.contains($0) }) else { return }
                orders[symbol] = left.isEmpty ? nil : left
            }
        }
        return live
    }

    /// True when protective orders sized to FillGuard's net `ours` can never cover more than the
    /// broker's net `theirs`: both on one side, the broker's at least as large. Anything else
    /// (the broker flat, on the other side, holding less, or FillGuard flat beside a broker's
    /// position it may be the only protection of) is left to a person.
    static func ordersCannotOvercover(ours: Quantity, theirs: Quantity) -> Bool {
        !ours.isZero && (ours.units > 0) == (theirs.units > 0) && theirs.magnitude >= ours.magnitude
    }

    private func reconcileHoldingOperations(held: inout Set<Symbol>) async -> [ReconciliationCorrection] {
        var corrections: [ReconciliationCorrection] = []
        // The fills step 3 adopted, per symbol: read again after the net check, they are not
        // adopted (nor reported) a second time, even where the machine refused one.
        var adoptedBefore: [Symbol: Set<ExecutionID>] = [:]
        func correct(_ correction: ReconciliationCorrection) {
            corrections.append(correction)
            publish(correction)
        }
        let lanes = allLanes()
        guard let broker = context.broker as? any BrokerQueries else {
            if !lanes.isEmpty {
                correct(ReconciliationCorrection(kind: .notReconciled, symbol: nil,
                                                 message: "the broker adapter answers no queries; the journal's state is used as is"))
            }
            for lane in lanes { await resumeWork(on: lane, correct: correct) }
            return corrections
        }
        var openOrders: [OrderID: BrokerOrderState] = [:]
        do throws(BrokerError) {
            openOrders = Dictionary(try await asking { () async throws(BrokerError) in try await broker.openOrders() }.map { ($0.orderID, $0) }, uniquingKeysWith: { $1 })
        } catch {
            // One order the broker reports that cannot be read (another program's, in a form
            // FillGuard does not use) must not cost the rest: each live order is then asked about
            // on its own, and fills made while down and the nets are still reconciled. What only
            // the list shows goes unchecked, and the correction says what.
            correct(ReconciliationCorrection(kind: .notReconciled, symbol: nil,
                                             message: "open orders could not be read: \(error); each live order FillGuard knows is asked about on its own; live orders it does not know, orders it has ended that the broker may still work, and ids planned while reconciling that the broker may already hold are not looked for (a person must look)"))
        }

        for lane in lanes {
            let symbol = lane.symbol
            let view = await read(lane) { machine in
                LaneView(unresolved: machine.unresolvedOperations, live: machine.liveOrders,
                         awaitingRetry: machine.ordersAwaitingRetry, awaitingRearm: machine.positionsAwaitingRearm, net: machine.netQuantity)
            }
            let inFlight = Set(view.unresolved.map(\.orderID))
            // 1. The broker's view of every order believed live (one query each for those not open there).
            var states: [OrderID: BrokerOrderState?] = [:]
            for order in view.live {
                if let open = openOrders[order.id] {
                    states[order.id] = open
                    continue
                }
                do throws(BrokerError) {
                    states[order.id] = try await asking { () async throws(BrokerError) in try await broker.orderState(order.id, symbol: symbol) }
                } catch {
                    correct(ReconciliationCorrection(kind: .notReconciled, symbol: symbol, orderID: order.id, message: "the order could not be read: \(error)"))
                }
            }
            // 2. Orders the broker works that the journal has as not yet sent (the submit went out,
            //    its record was lost: never submit the id again), and sizes the broker holds that
            //    the journal does not (so the broker's fills fit).
            for order in view.live where !inFlight.contains(order.id) {
                guard let state = states[order.id] ?? nil else { continue }
                if order.status == .pendingNew {
                    let works = state.status.isLive ? "already works" : "took (and has since \(state.status.rawValue))"
                    correct(ReconciliationCorrection(kind: .resolvedOperation, symbol: symbol, orderID: order.id,
                                                     message: "the broker \(works) this order (\(state.quantity)), which the journal has as not yet sent; taken as placed, not submitted again"))
                } else if order.status == .awaitingFills, state.status.isLive {
                    correct(ReconciliationCorrection(kind: .resolvedOperation, symbol: symbol, orderID: order.id,
                                                     message: "the broker works this order (\(state.quantity), \(state.filled) filled), which it had answered \"too late\"; it is live, and planned again"))
                } else if state.quantity != order.quantity {
                    correct(ReconciliationCorrection(kind: .sizeDiffers, symbol: symbol, orderID: order.id,
                                                     message: "the broker has \(state.quantity), FillGuard had \(order.quantity); the broker's size is taken"))
                } else {
                    continue
                }
                lane.enqueue(.brokerQuantity(order.id, state.quantity))
            }
            // 3. Fills made at the broker that the journal does not hold.
            let (adopted, executionsRead, adoptedIDs) = await adoptMissingFills(on: lane, from: broker, correct: correct)
            adoptedBefore[symbol] = adoptedIDs
            // 3b. Filled quantity at the broker that neither the journal nor the reports account for
            // (the broker did not keep or resend them): reported, never made up.
            for order in view.live where executionsRead {
                guard let state = states[order.id] ?? nil else { continue }
                let accounted = order.filledQuantity + (adopted[order.id] ?? .zero)
                if state.filled > accounted {
                    correct(ReconciliationCorrection(kind: .unreportedFill, symbol: symbol, orderID: order.id,
                                                     message: "the broker has \(state.filled) filled, the journal and the broker's reports account for \(accounted); the other \(state.filled - accounted) came with no execution report and is not applied; a person must look"))
                }
            }
            // 4. Operations sent (or about to be) when the process stopped: ask, never resend blindly.
            for operation in view.unresolved {
                let state: BrokerOrderState?
                if let known = states[operation.orderID] {
                    state = known
                } else {
                    do throws(BrokerError) {
                        state = try await asking { () async throws(BrokerError) in try await broker.orderState(operation.orderID, symbol: symbol) }
                    } catch {
                        correct(ReconciliationCorrection(kind: .notReconciled, symbol: symbol, orderID: operation.orderID,
                                                         message: "\(operation.kind.rawValue) outcome unknown and the order could not be read: \(error); treated as a timeout"))
                        lane.enqueue(.completed(operation, .failure(BrokerError(.timedOut, "outcome unknown after restart")), breaker: nil))
                        continue
                    }
                }
                if state == nil, operation.kind == .submit, !operation.role.isProtective, context.configuration.unsentEntries == .refuse {
                    // Never got by the broker: refused rather than sent after the restart.
                    correct(ReconciliationCorrection(kind: .entryRefused, symbol: symbol, orderID: operation.orderID,
                                                     message: "submit \(operation.orderID): the broker never got it; refused, not sent after the restart (unsentEntries: refuse)"))
                    lane.enqueue(.completed(operation, .failure(BrokerError(.permanent, UnsentEntryPolicy.refusal)), breaker: nil))
                    continue
                }
                let (result, outcome) = Self.outcome(of: operation, given: state)
                correct(ReconciliationCorrection(kind: .resolvedOperation, symbol: symbol, orderID: operation.orderID, message: outcome))
                // An order the broker took and then ended while FillGuard was down (a day order
                // expired, an exchange cancel): its end goes first, so the answer finds it ended
                // and the role gets a new order (it is not kept as working, nor left waiting for fills).
                // (A cancel's answer settles it anyway; a submit the broker rejected is answered as refused.)
                if let state, let ended = Self.ending(state.status),
                   operation.kind == .modify || (operation.kind == .submit && ended != .rejected) {
                    endedWhileDown(operation.orderID, ended, on: lane, correct: correct)
                }
                // Made up from the order's state, not a broker's answer: no news of its health.
                lane.enqueue(.completed(operation, result, breaker: nil))
            }
            // 5. Orders believed live that ended at the broker, or that it does not know.
            for order in view.live where !inFlight.contains(order.id) {
                guard let known = states[order.id] else { continue }
                if order.status == .pendingNew {
                    // Taken as placed in 2 when the broker has it; one it took and then ended
                    // while FillGuard was down (rejected, expired, an exchange cancel) ends here,
                    // after its fills, so the role gets a new order rather than one the broker
                    // no longer works. One the broker does not know is sent again (resumed work).
                    if let state = known, let outcome = Self.ending(state.status) {
                        endedWhileDown(order.id, outcome, on: lane, correct: correct)
                    }
                    continue
                }
                guard let state = known else {
                    correct(ReconciliationCorrection(kind: .orderMissingAtBroker, symbol: symbol, orderID: order.id,
                                                     message: "the broker does not know this live order; treated as cancelled and re-planned"))
                    lane.enqueue(.broker(.orderStatus(OrderStatusReport(orderID: order.id, symbol: symbol, outcome: .cancelled, reason: "missing at the broker after restart"))))
                    continue
                }
                if let outcome = Self.ending(state.status) {
                    endedWhileDown(order.id, outcome, on: lane, correct: correct)
                }
            }
            // 6. Entries and scale-ins waiting to be sent (never sent, or waiting out a retry)
            //    that the broker does not have (asked, not merely unread): refused, if so
            //    configured, before anything goes out (their retries are not resumed). Read once
            //    what is queued above is applied (a refused entry takes its other opening orders
            //    with it).
            var refused: [OrderID] = []
            // Retries to resume: those step 4's answers left waiting (a refused entry ends its
            // bracket's other opening orders, retries and all).
            var notResumed: Set<OrderID> = []
            if context.configuration.unsentEntries == .refuse {
                let (waiting, awaiting) = await read(lane) { ($0.waitingOpeningSubmits, Set($0.ordersAwaitingRetry)) }
                notResumed = Set(view.awaitingRetry).subtracting(awaiting)
                refused = waiting.filter { id in
                    guard !inFlight.contains(id), let known = states[id], known == nil else { return false }
                    return true
                }
                let roles = Dictionary(view.live.map { ($0.id, $0.role) }, uniquingKeysWith: { first, _ in first })
                for id in refused {
                    correct(ReconciliationCorrection(kind: .entryRefused, symbol: symbol, orderID: id,
                                                     message: "\(roles[id].map { "\($0) " } ?? "")\(id) waits to be sent and the broker does not have it; refused, not sent after the restart (unsentEntries: refuse)"))
                }
                if !refused.isEmpty { lane.enqueue(.refuseUnsentEntries(refused)) }
                notResumed.formUnion(refused)
            }
            await resumeWork(on: lane, view: view, skipping: notResumed, correct: correct)
        }

        // 4. Live orders nobody here knows, and orders FillGuard has ended that the broker still works.
        for state in openOrders.values.sorted(by: { $0.orderID.rawValue < $1.orderID.rawValue }) {
            var known = false
            var ended = false
            var unsent = false
            let stateLane = lane(for: state.symbol, create: false)
            if let stateLane {
                (known, ended, unsent) = await read(stateLane) { machine in
                    guard machine.knows(state.orderID) else { return (false, false, false) }
                    let order = machine.snapshot(of: state.orderID)
                    let inFlight = machine.unresolvedOperations.contains { $0.orderID == state.orderID }
                    // Retired (no snapshot) or in a final state, with nothing in flight for it.
                    let finished = order.map { !$0.status.isLive } ?? true
                    let unsent = order.map { $0.status == .pendingNew && $0.side == state.side } ?? false
                    return (true, finished && !inFlight, unsent && !inFlight)
                }
            }
            if known {
                if ended { await cancelEndedOrder(state, correct: correct) }
                if unsent, let stateLane {
                    // Planned during this reconciliation (from fills adopted above) under an id the
                    // broker already works: the journal lost that order's records (a torn log), and
                    // the ids are derived alike. It is the broker's order, at the broker's size: never
                    // submitted again (a broker takes a resend as the same order and keeps its size).
                    correct(ReconciliationCorrection(kind: .resolvedOperation, symbol: state.symbol, orderID: state.orderID,
                                                     message: "the broker already works this order (\(state.quantity), \(state.filled) filled), planned again after the journal lost its record; taken as placed, not submitted again"))
                    stateLane.enqueue(.brokerQuantity(state.orderID, state.quantity))
                }
                continue
            }
            // One FillGuard placed (its id is of FillGuard's making) whose records the journal
            // lost, left working: no bracket opens beside it while the broker works it.
            let orphanOf = SymbolStateMachine.positionID(ofOrder: state.orderID)
            func leftWorking(_ message: String) -> String {
                guard let orphanOf else { return message }
                context.unknownLiveOrders.withLock { $0[state.symbol, default: []].append(state.orderID) }
                // Its position's id is taken, as a retired one's is: a new bracket under it would
                // give its orders ids the broker already holds.
                context.positionSymbols.withLock { if $0[orphanOf] == nil { $0[orphanOf] = state.symbol } }
                return message + "; an order of FillGuard's making: no bracket opens on \(state.symbol) while the broker works it (unknownOrdersLive), until releaseUnknownOrders(of:)"
            }
            switch context.configuration.unknownOrders {
            case .adopt:
                var adopted = false
                if state.filled.isZero, let lane = lane(for: state.symbol, create: false) {
                    lane.enqueue(.adopt(state.orderID, state.side, state.type, state.quantity))
                    adopted = await read(lane) { $0.knows(state.orderID) }
                }
                correct(ReconciliationCorrection(kind: .unknownBrokerOrder, symbol: state.symbol, orderID: state.orderID,
                                                 message: adopted
                                                    ? "live at the broker, unknown to the journal; adopted into the open position (a duplicate of a live role is cancelled)"
                                                    : leftWorking("live at the broker, unknown to the journal; not adoptable (no open position, not protective, or partly filled); left working")))
            case .leave:
                correct(ReconciliationCorrection(kind: .unknownBrokerOrder, symbol: state.symbol, orderID: state.orderID,
                                                 message: leftWorking("live at the broker, unknown to the journal; left working")))
            case .cancel:
                do throws(BrokerError) {
                    try await context.broker.cancel(CancelOrderRequest(orderID: state.orderID, symbol: state.symbol))
                    correct(ReconciliationCorrection(kind: .unknownBrokerOrder, symbol: state.symbol, orderID: state.orderID,
                                                     message: "live at the broker, unknown to the journal; cancelled"))
                } catch {
                    correct(ReconciliationCorrection(kind: .unknownBrokerOrder, symbol: state.symbol, orderID: state.orderID,
                                                     message: leftWorking("live at the broker, unknown to the journal; cancel failed: \(error)")))
                }
            }
        }

        // 5. Net positions, once everything above has been applied. A resting order may fill
        //    while reconciliation runs (its report waits in the stream until recover() returns):
        //    a symbol whose nets differ has its fills read again, and only a difference that
        //    stays after that is a mismatch.
        do throws(BrokerError) {
            var differing = try await netDifferences(among: lanes.map(\.symbol), from: broker)
            if !differing.isEmpty {
                for symbol in differing.keys.sorted() {
                    if let lane = lane(for: symbol, create: false) {
                        _ = await adoptMissingFills(on: lane, from: broker, again: true, skipping: adoptedBefore[symbol] ?? [], correct: correct)
                    }
                }
                differing = try await netDifferences(among: Array(differing.keys), from: broker, only: true)
            }
            for (symbol, nets) in differing.sorted(by: { $0.key < $1.key }) {
                var message = "the broker's net is \(nets.theirs), FillGuard's \(nets.ours) after reconciliation; a person must look"
                if context.configuration.positionMismatch == .hold, !Self.ordersCannotOvercover(ours: nets.ours, theirs: nets.theirs),
                   lane(for: symbol, create: false) != nil {
                    // Orders sized to FillGuard's net could open or add to a position the broker
                    // does not have (or cancel the only cover of one it has): nothing goes out.
                    held.insert(symbol)
                    message += "; FillGuard's orders could cover more than the broker's position, so nothing is sent for \(symbol) until releaseHeldOperations(of:)"
                }
                correct(ReconciliationCorrection(kind: .positionMismatch, symbol: symbol, message: message))
            }
        } catch {
            correct(ReconciliationCorrection(kind: .notReconciled, symbol: nil, message: "positions could not be read: \(error)"))
        }
        return corrections
    }

    /// Reads the broker's fills of the lane's symbol and applies those the journal does not hold
    /// (booked or not is decided by the machine: remembered ids, the broker's cumulative
    /// quantities, and for orders whose old ids left the window, quantities). Returns what was
    /// adopted per order, whether the fills could be read, and the ids adopted. Read `again`
    /// (after the net check), only new fills are adopted and reported: those in `skipping` were
    /// adopted the first time, and what could not be applied was reported then.
    func adoptMissingFills(on lane: SymbolLane, from broker: any BrokerQueries, again: Bool = false,
                           skipping earlier: Set<ExecutionID> = [], live: Bool = false,
                           correct: (ReconciliationCorrection) -> Void) async -> (adopted: [OrderID: Quantity], read: Bool, ids: Set<ExecutionID>) {
        let when = live ? "FillGuard was running, and its report never came" : again ? "reconciliation ran" : "FillGuard was down"
        let symbol = lane.symbol
        var adopted: [OrderID: Quantity] = [:]
        let executions: [ExecutionReport]
        do throws(BrokerError) {
            executions = try await asking { () async throws(BrokerError) in try await broker.executions(of: symbol) }
        } catch {
            correct(ReconciliationCorrection(kind: .notReconciled, symbol: symbol, message: "executions could not be read: \(error)"))
            return (adopted, false, [])
        }
        let sorted = await read(lane) { machine in machine.reconcile(brokerExecutions: executions) }
        var ids = Set<ExecutionID>()
        for execution in sorted.missing where !earlier.contains(execution.executionID) {
            ids.insert(execution.executionID)
            adopted[execution.orderID, default: .zero] += execution.lastQuantity
            correct(ReconciliationCorrection(kind: .adoptedFill, symbol: symbol, orderID: execution.orderID,
                                             message: "fill \(execution.executionID) of \(execution.lastQuantity) at \(execution.lastPrice) was made while \(when); applied"))
            lane.enqueue(.broker(.execution(execution)))
        }
        if again { return (adopted, true, ids) }
        for execution in sorted.unknownOrder {
            correct(ReconciliationCorrection(kind: .unknownExecution, symbol: symbol, orderID: execution.orderID,
                                             message: "fill \(execution.executionID) is for an order no journal record knows; not applied"))
        }
        for retired in sorted.retiredOrder {
            let execution = retired.report
            correct(ReconciliationCorrection(kind: .unknownExecution, symbol: symbol, orderID: execution.orderID,
                                             message: "fill \(execution.executionID) of \(execution.lastQuantity) is for an order retired with closed position \(retired.positionID) and was never booked; not applied, a person must look"))
        }
        for ambiguity in sorted.ambiguous {
            correct(ReconciliationCorrection(kind: .notReconciled, symbol: symbol, orderID: ambiguity.orderID, message: ambiguity.message))
        }
        return (adopted, true, ids)
    }

    /// Symbols whose net at the broker differs from FillGuard's, once every lane has applied
    /// what is queued: `symbols` plus every symbol the broker has a position in, or (`only`)
    /// just `symbols`.
    private func netDifferences(among symbols: [Symbol], from broker: any BrokerQueries,
                                only: Bool = false) async throws(BrokerError) -> [Symbol: (ours: Quantity, theirs: Quantity)] {
        await waitUntilApplied()
        let positions = try await asking { () async throws(BrokerError) in try await broker.positions() }
        var checked = Set(symbols)
        if !only { checked.formUnion(positions.keys) }
        var differing: [Symbol: (ours: Quantity, theirs: Quantity)] = [:]
        for symbol in checked.sorted() {
            let ours: Quantity
            if let lane = lane(for: symbol, create: false) {
                ours = await read(lane) { $0.netQuantity }
            } else {
                ours = .zero
            }
            let theirs = positions[symbol] ?? .zero
            if ours != theirs { differing[symbol] = (ours, theirs) }
        }
        return differing
    }

    /// Counts, logs and publishes a reconciliation's correction.
    func publish(_ correction: ReconciliationCorrection) {
        context.metrics.corrections[correction.kind]?.increment()
        context.counters.corrected(correction.kind)
        context.logger.notice("reconciliation: \(correction)")
        context.bus.corrections.publish(correction)
    }

    /// Asks the broker a reconciliation question; a failure it may not repeat (transient, timed
    /// out: a connection reset at start-up) is asked again as the retry policy says, so that one
    /// such error does not leave the journal's state unreconciled.
    func asking<Answer>(_ question: () async throws(BrokerError) -> Answer) async throws(BrokerError) -> Answer {
        let retry = context.configuration.retry
        var attempt = 1
        while true {
            do throws(BrokerError) {
                return try await question()
            } catch {
                guard error.kind.isRetryable, attempt < retry.maxAttempts else { throw error }
                try? await Task.sleep(for: retry.delay(beforeRetry: attempt, unit: Double.random(in: 0..<1)))
                attempt += 1
            }
        }
    }

    /// An order FillGuard's record has ended is still live at the broker (a cancel or rejection
    /// the broker never applied, e.g. a resubmitted id it already had): asked again, then cancelled.
    /// A failure the broker may not repeat (transient, timed out) is tried again, as the retry
    /// policy says; an order the broker no longer has is done.
    private func cancelEndedOrder(_ state: BrokerOrderState, correct: (ReconciliationCorrection) -> Void) async {
        let what = "live at the broker (\(state.side.rawValue) \(state.quantity - state.filled)), but ended in FillGuard's record"
        let retry = context.configuration.retry
        var attempt = 1
        while true {
            do throws(BrokerError) {
                if let broker = context.broker as? any BrokerQueries,
                   let now = try await broker.orderState(state.orderID, symbol: state.symbol), !now.status.isLive {
                    return
                }
                try await context.broker.cancel(CancelOrderRequest(orderID: state.orderID, symbol: state.symbol))
                correct(ReconciliationCorrection(kind: .endedOrderLiveAtBroker, symbol: state.symbol, orderID: state.orderID,
                                                 message: "\(what); cancelled"))
                return
            } catch {
                if error.kind == .unknownOrder {
                    correct(ReconciliationCorrection(kind: .endedOrderLiveAtBroker, symbol: state.symbol, orderID: state.orderID,
                                                     message: "\(what); the broker no longer has it"))
                    return
                }
                if error.kind.isRetryable, attempt < retry.maxAttempts {
                    try? await Task.sleep(for: retry.delay(beforeRetry: attempt, unit: Double.random(in: 0..<1)))
                    attempt += 1
                    continue
                }
                correct(ReconciliationCorrection(kind: .endedOrderLiveAtBroker, symbol: state.symbol, orderID: state.orderID,
                                                 message: "\(what); cancel failed\(attempt > 1 ? " \(attempt) times" : ""): \(error); a person must look"))
                return
            }
        }
    }

    /// How an order the broker holds has ended, unless it is live or filled.
    static func ending(_ status: OrderStatus) -> OrderStatusReport.Outcome? {
        switch status {
        case .cancelled: .cancelled
        case .expired: .expired
        case .rejected: .rejected
        default: nil
        }
    }

    /// Books the end at the broker of an order FillGuard has as live, found while reconciling.
    private func endedWhileDown(_ orderID: OrderID, _ outcome: OrderStatusReport.Outcome, on lane: SymbolLane,
                                correct: (ReconciliationCorrection) -> Void) {
        correct(ReconciliationCorrection(kind: .orderEndedAtBroker, symbol: lane.symbol, orderID: orderID,
                                         message: "ended at the broker (\(outcome.rawValue)) while FillGuard was down"))
        lane.enqueue(.broker(.orderStatus(OrderStatusReport(orderID: orderID, symbol: lane.symbol, outcome: outcome, reason: "found ended after restart"))))
    }

    /// The outcome of an operation whose answer was lost, from the order's state at the broker.
    static func outcome(of operation: OrderOperation, given state: BrokerOrderState?) -> (Result<Void, BrokerError>, String) {
        let name = "\(operation.kind.rawValue) \(operation.orderID)"
        switch operation.request {
        case .submit:
            guard let state else {
                return (.failure(BrokerError(.transient, "not at the broker after restart")), "\(name): the broker never got it; it will be sent again")
            }
            if state.status == .rejected {
                return (.failure(BrokerError(.permanent, "rejected by the broker")), "\(name): the broker rejected it")
            }
            return (.success(()), "\(name): the broker has it; accepted")
        case .modify(let request):
            guard let state else {
                return (.failure(BrokerError(.unknownOrder, "order unknown to the broker")), "\(name): the broker does not know the order; it is taken as ended")
            }
            if !state.status.isLive, state.quantity == request.newQuantity {
                // The modify took, then the order ended (filled at its new size, say): its fills
                // were adopted above, and none beyond them are to come.
                return (.success(()), "\(name): the broker had the new size \(request.newQuantity) when the order ended (\(state.status.rawValue)); accepted")
            }
            if !state.status.isLive {
                return (.failure(BrokerError(.tooLate, "order ended")), "\(name): the order had ended (\(state.status.rawValue)); too late")
            }
            if state.quantity == request.newQuantity {
                return (.success(()), "\(name): the broker has the new size \(request.newQuantity); accepted")
            }
            return (.failure(BrokerError(.transient, "not applied")), "\(name): the broker still has \(state.quantity); it will be sent again")
        case .cancel:
            guard let state, state.status.isLive else {
                return (.success(()), "\(name): the order is no longer live at the broker; done")
            }
            return (.failure(BrokerError(.transient, "still live")), "\(name): still live at the broker; it will be sent again")
        }
    }

    private func resumeWork(on lane: SymbolLane, view: LaneView? = nil, skipping refused: Set<OrderID> = [],
                            correct: (ReconciliationCorrection) -> Void) async {
        var current = view
        if current == nil {
            current = await read(lane) { machine in
                LaneView(unresolved: machine.unresolvedOperations, live: machine.liveOrders,
                         awaitingRetry: machine.ordersAwaitingRetry, awaitingRearm: machine.positionsAwaitingRearm, net: machine.netQuantity)
            }
        }
        guard let view = current else { return }
        for id in view.awaitingRetry where !refused.contains(id) {
            correct(ReconciliationCorrection(kind: .resumedWork, symbol: lane.symbol, orderID: id, message: "retry resumed after restart"))
            lane.enqueue(.retryDue(id))
        }
        for id in view.awaitingRearm {
            correct(ReconciliationCorrection(kind: .resumedWork, symbol: lane.symbol, message: "position \(id) re-armed after restart"))
            lane.enqueue(.rearm(id))
        }
        // Anything the replayed state still wants sent waits for the end of reconciliation
        // (`reconcile()`): an order it has as unsent may have been at the broker already (step 2
        // took those as placed), and what goes out must not move the positions being compared.
    }

    /// Waits until every lane has applied what is queued (operations may still be in flight).
    private func waitUntilApplied() async {
        for lane in allLanes() { _ = await read(lane) { _ in true } }
    }
}

/// Collects journal notices from the store's loader.
private final class NoticeList: Sendable {
    private let items = Mutex<[String]>([])
    func append(_ notice: String) { items.withLock { $0.append(notice) } }
    var all: [String] { items.withLock { $0 } }
}
