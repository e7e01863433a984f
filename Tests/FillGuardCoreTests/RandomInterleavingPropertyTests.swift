@testable import FillGuardCore
import Foundation
import PropertyBased
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Random scenarios across several symbols: fills (partial, of any live order, including while
/// its modify or cancel travels), operations completing in random order, transient faults,
/// timeouts (whether or not the request took effect),
/// honest too-late races, duplicate reports and reports delivered late and out of order.
/// At quiescence every rule must hold, against the broker's own truth.
@Suite("Random interleavings (property-based)")
struct RandomInterleavingPropertyTests {
    static let cases: Int = {
        if let text = getenv("FILLGUARD_PROPERTY_CASES"), let value = Int(String(cString: text)), value > 0 { return value }
        return 1_000
    }()

    // 7790731789736009538: the generator once gave two held reports the same execution id.
    @Test("regression: a flip while a protective order was unsent, or its submit failed, re-protects on the new side",
          arguments: [10767185430687197313 as UInt64, 1314059498052943223, 7242084253284404633, 4587881667412026017, 7790731789736009538])
    func regressionSeeds(seed: UInt64) {
        // Without timeouts: the draws that found these bugs, exactly.
        var scenario = Scenario(seed: seed, timeouts: false)
        let problems = scenario.run()
        #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(5))\n\(scenario.dump())")
    }

    @Test("new brackets opened on symbols mid-scenario: the opening guard (only the positions that may block) decides as a scan of every position does, at every step")
    func openingGuardMatchesAFullScan() async {
        await propertyCheck(count: max(1, Self.cases / 2), input: Gen.uint64(in: 0 ... .max)) { seed in
            var scenario = Scenario(seed: seed, reopens: true)
            let problems = scenario.run()
            #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(5))\n\(scenario.dump())")
        }
    }

    @Test("the broker ends orders on its own and answers requests it carried out late (after fills and ends): every fill still counts and the rules hold")
    func brokerEndsAndLateAnswers() async {
        await propertyCheck(count: max(1, Self.cases / 2), input: Gen.uint64(in: 0 ... .max)) { seed in
            var scenario = Scenario(seed: seed, brokerEnds: true)
            let problems = scenario.run()
            #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(5))\n\(scenario.dump())")
        }
    }

    /// Recovery restores a machine from its image (a journal snapshot) at any point: with
    /// operations in flight, modifies travelling, retries pending, late fills allowed. A field
    /// the image leaves out (or codes wrong) makes the restored machine act differently.
    @Test("a machine restored from its coded image at random points mid-scenario acts exactly as the one never restored")
    func imageRoundTripsMidScenario() async {
        await propertyCheck(count: max(1, Self.cases / 2), input: Gen.uint64(in: 0 ... .max)) { seed in
            var plain = Scenario(seed: seed, brokerEnds: seed % 2 == 0)
            var restored = Scenario(seed: seed, brokerEnds: seed % 2 == 0, imageRoundTrips: true)
            let plainProblems = plain.run()
            let restoredProblems = restored.run()
            #expect(restored.roundTrips > 0)
            #expect(restoredProblems == plainProblems, "seed \(seed): \(restoredProblems.prefix(5)) vs \(plainProblems.prefix(5))")
            #expect(restored.outcome == plain.outcome, "seed \(seed): the restored run ended differently")
        }
    }

    @Test("invariants hold at quiescence for random interleavings, faults and duplicates")
    func invariantsHoldAtQuiescence() async {
        // What the scenarios went through, over all cases: a generator that drifted would make
        // the hard cases rare and the test easy.
        let seen = Mutex<[String: Int]>([:])
        await propertyCheck(count: Self.cases, input: Gen.uint64(in: 0 ... .max)) { seed in
            var scenario = Scenario(seed: seed)
            let problems = scenario.run()
            #expect(problems.isEmpty, "seed \(seed): \(problems.prefix(5))\n\(scenario.dump())")
            seen.withLock { seen in seen.merge(scenario.events) { $0 + $1 } }
        }
        let events = seen.withLock { $0 }
        // (A quick local run with a few cases need not meet every one.)
        guard Self.cases >= 200 else { return }
        for event in ["flip", "timeout applied", "timeout lost", "too late", "duplicate refused", "late report", "transient", "not sent"] {
            #expect(events[event, default: 0] > 0, "no scenario had a \(event): \(events)")
        }
    }
}

/// One random scenario, reproducible from its seed.
struct Scenario {
    private var random: TestRandom
    /// Draws the kind of each injected fault, apart from `random` (so seeds without timeouts
    /// replay the same scenario as before timeouts existed).
    private var faultRandom: TestRandom
    /// Some faults are timeouts: the request was lost on the way, or took effect and its
    /// answer was lost.
    private let timeouts: Bool
    private var models: [ModelBroker] = []
    private var held: [[ExecutionReport]] = []
    /// Numbers the held reports: their execution ids must be unique, like a real broker's.
    private var heldCount = 0
    /// Whether new brackets are opened mid-scenario (drawn from `reopenRandom`, apart from
    /// `random`, so that the other scenarios stay as they were), checking the opening guard.
    private let reopens: Bool
    private var reopenRandom: TestRandom
    private var reopened = 0
    /// Whether the broker carries out requests before it answers them and ends orders on its
    /// own mid-scenario (drawn from `endRandom`, apart from `random`, as for `reopens`).
    private let brokerEnds: Bool
    private var endRandom: TestRandom
    /// Whether each step may replace a machine with one restored from its coded image (drawn
    /// from `imageRandom`, apart from `random`: the scenario is otherwise the one without).
    private let imageRoundTrips: Bool
    private var imageRandom: TestRandom
    /// How many times a machine was restored from its image.
    private(set) var roundTrips = 0
    /// How many times each hard case came up (a flip, a timeout whose request took effect...).
    private(set) var events: [String: Int] = [:]

    init(seed: UInt64, timeouts: Bool = true, reopens: Bool = false, brokerEnds: Bool = false, imageRoundTrips: Bool = false) {
        random = TestRandom(seed: seed)
        faultRandom = TestRandom(seed: seed ^ 0x5EED_F417)
        reopenRandom = TestRandom(seed: seed ^ 0x0BE7_0BE7)
        endRandom = TestRandom(seed: seed ^ 0xE4D5_E4D5)
        imageRandom = TestRandom(seed: seed ^ 0x1A6E_1A6E)
        self.imageRoundTrips = imageRoundTrips
        self.timeouts = timeouts
        self.reopens = reopens
        self.brokerEnds = brokerEnds
    }

    mutating func run() -> [String] {
        let symbols = random.int(2...4)
        for index in 0..<symbols {
            let configuration = SymbolStateMachine.Configuration(
                nativeModify: random.int(0...2) != 0,
                replaceStrategy: random.int(0...1) == 0 ? .cancelThenCreate : .createThenCancel,
                maxAttempts: 3)
            var model = ModelBroker(Symbol("S\(index)"), configuration)
            let side: Side = random.int(0...1) == 0 ? .buy : .sell
            let long = side == .buy
            var scaleIns: [BracketSpec.ScaleIn] = []
            for step in 0..<random.int(0...2) {
                scaleIns.append(.init(quantity: quantity(), type: .limit(Price(units: (long ? 98 - Int64(step) : 102 + Int64(step)) * Price.unitsPerWhole))))
            }
            let spec = BracketSpec(positionID: PositionID("P\(index)"), symbol: model.symbol, side: side, quantity: quantity(),
                                   entryType: .market, stopLoss: Price(long ? "95" : "105"),
                                   takeProfit: random.int(0...4) == 0 ? nil : Price(long ? "110" : "90"), scaleIns: scaleIns)
            do { try model.open(spec) } catch { return ["open failed: \(error)"] }
            models.append(model)
            held.append([])
        }
        var problems: [String] = []
        for _ in 0..<random.int(10...120) {
            let index = random.int(0...(models.count - 1))
            step(index, &problems)
            if reopens {
                checkOpeningGuard(&problems)
                switch reopenRandom.int(0...5) {
                case 0: openAnother(on: index, &problems)
                case 1: closeSomething(on: index, &problems)
                default: break
                }
            }
            if imageRoundTrips, imageRandom.int(0...3) == 0 { restoreFromImage(index, &problems) }
            if brokerEnds {
                switch endRandom.int(0...5) {
                case 0: if !models[index].inFlight.isEmpty { models[index].applyEarly(endRandom.int(0...(models[index].inFlight.count - 1))) }
                case 1: endSomething(on: index, &problems)
                default: break
                }
            }
        }
        // Quiesce: deliver everything held (out of order), answer everything, no new fills.
        for index in models.indices {
            if imageRoundTrips { restoreFromImage(index, &problems) }
            while !held[index].isEmpty {
                let report = held[index].remove(at: random.int(0...(held[index].count - 1)))
                deliver(report, to: index, &problems)
            }
            models[index].settle()
            problems += check(models[index])
            // After the cool-down the runtime re-arms what failed for good; with the broker
            // answering, every role is then protected again, alerted or not.
            var actions: [SymbolStateMachine.Action] = []
            for id in models[index].machine.positionIDs { models[index].machine.rearm(id, emitting: &actions) }
            models[index].settle()
            problems += check(models[index], afterRearm: true).map { "after re-arm: \($0)" }
            events["flip", default: 0] += models[index].alerts.count { $0.kind == .positionFlipped }
        }
        return problems
    }

    private mutating func restoreFromImage(_ index: Int, _ problems: inout [String]) {
        do {
            try models[index].restoreFromImage()
            roundTrips += 1
        } catch {
            problems.append("image of \(models[index].symbol) could not be coded: \(error)")
        }
    }

    /// Everything a run ends with, to compare two runs of one seed: each machine's coded image,
    /// the operations sent, the alerts raised.
    var outcome: [String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return models.map { model in
            let image = (try? encoder.encode(model.machine.image)).map { String(decoding: $0, as: UTF8.self) } ?? "uncodable"
            let ids = model.machine.image
            return "\(image)\n\(model.sent)\n\(model.alerts)\n\(ids.previousExecutionIDs)\n\(ids.currentExecutionIDs)"
        }
    }

    /// Every position, order and broker-side order, for failure messages.
    func dump() -> String {
        var lines: [String] = []
        for model in models {
            for id in model.machine.positionIDs {
                let position = model.snapshot(id)
                lines.append("\(id) \(position.side) \(position.status) net \(position.netQuantity)")
                for order in position.orders {
                    let truth = model.truth[order.id].map { "broker q \($0.quantity) f \($0.filled) live \($0.live)" } ?? "not at broker"
                    lines.append("  \(order.id) \(order.role) \(order.side) q \(order.quantity) f \(order.filledQuantity) \(order.status) \(order.failure ?? "") | \(truth)")
                }
            }
            if !model.alerts.isEmpty { lines.append("  alerts: \(model.alerts)") }
            lines.append("  log: \(model.log.joined(separator: "\n    "))")
        }
        return lines.joined(separator: "\n")
    }

    private mutating func quantity() -> Quantity {
        // Whole shares or halves: fractional quantities are first-class.
        Quantity(units: Int64(random.int(2...1000)) * Quantity.unitsPerShare / 2)
    }

    private mutating func step(_ index: Int, _ problems: inout [String]) {
        switch random.int(0...11) {
        case 0...2:
            models[index].pull()
        case 3...5:
            guard !models[index].inFlight.isEmpty else { return }
            let which = random.int(0...(models[index].inFlight.count - 1))
            guard random.int(0...9) == 0 else {
                models[index].complete(which)
                return
            }
            switch timeouts ? faultRandom.int(0...4) : 0 {
            case 0:
                events["transient", default: 0] += 1
                models[index].complete(which, failing: .transient("throttled"))
            case 1:
                // The connection was down: nothing reached the broker.
                events["not sent", default: 0] += 1
                models[index].complete(which, failing: .notSent("session down"))
            case 2:
                events["timeout lost", default: 0] += 1
                models[index].complete(which, failing: .timedOut("timeout, request lost"))
            case 3:
                events["timeout applied", default: 0] += 1
                models[index].complete(which, failing: .timedOut("timeout, answer lost"), applied: true)
            default:
                // A refusal of a resend after a timeout (the first try may have placed, or
                // cancelled, the order): it says nothing about where that first try stands.
                let operation = models[index].inFlight[which]
                if operation.kind != .modify, operation.attempt > 1 {
                    models[index].complete(which, failing: .permanent("refused"))
                } else {
                    models[index].complete(which, failing: .transient("throttled"))
                }
            }
        case 6...7:
            fillSomething(index, delay: false, &problems)
        case 8:
            fillSomething(index, delay: true, &problems)
        case 9:
            // A too-late race: the order of an in-flight modify/cancel fills completely first.
            guard let operation = models[index].inFlight.first(where: { $0.kind != .submit }),
                  let order = models[index].truth[operation.orderID], order.live else { return }
            events["too late", default: 0] += 1
            do { try models[index].fill(operation.orderID, order.open, at: Price("100")!) } catch { problems.append("race fill refused: \(error)") }
            if let position = models[index].inFlight.firstIndex(of: operation) { models[index].complete(position) }
        case 10:
            // A duplicate of an earlier report is refused and changes nothing.
            guard !models[index].reports.isEmpty else { return }
            let report = models[index].reports[random.int(0...(models[index].reports.count - 1))]
            guard models[index].machine.hasApplied(report.executionID) else { return }
            let before = models[index].machine.positionIDs.map { models[index].machine.snapshot(of: $0) }
            events["duplicate refused", default: 0] += 1
            do {
                try models[index].deliver(report)
                problems.append("duplicate \(report.executionID) accepted")
            } catch {
                if error.code != .duplicateExecution { problems.append("duplicate refused as \(error.code)") }
            }
            if models[index].machine.positionIDs.map({ models[index].machine.snapshot(of: $0) }) != before { problems.append("duplicate changed state") }
        default:
            var actions: [SymbolStateMachine.Action] = []
            for id in models[index].retries { models[index].machine.retryDue(id, emitting: &actions) }
            models[index].retries.removeAll()
            if !held[index].isEmpty {
                events["late report", default: 0] += 1
                deliver(held[index].removeFirst(), to: index, &problems)
            }
        }
    }

    /// Every position that would keep a new bracket from opening (in progress, or closed with
    /// an order live) must be among those the opening guard looks at; and the guard must decide
    /// as a scan of every position does.
    private func checkOpeningGuard(_ problems: inout [String]) {
        for model in models {
            let machine = model.machine
            for p in machine.positions.indices where machine.positions[p].status != .closed || machine.hasLiveOrder(p) {
                if !machine.openBlockers.contains(Int32(p)) {
                    problems.append("\(model.symbol): \(machine.positions[p].id) blocks an opening but the guard does not look at it")
                }
            }
            let guarded = machine.openingBlocker()
            let scanned = machine.openingBlocker(scanningAll: true)
            if (guarded == nil) != (scanned == nil) || guarded?.inProgress != scanned?.inProgress {
                problems.append("\(model.symbol): the opening guard finds \(String(describing: guarded)), a scan of every position \(String(describing: scanned))")
            }
        }
    }

    /// Fills the whole rest of a protective order live at the broker, which closes its position
    /// (or flips it, when a report held back is still to come): positions close, settle and
    /// give way to new brackets, and late reports reopen settled ones.
    private mutating func closeSomething(on index: Int, _ problems: inout [String]) {
        let protective = models[index].truth.filter { entry in
            entry.value.live && entry.value.open.isPositive
                && models[index].machine.snapshot(of: entry.key).map { $0.role.isProtective } == true
        }.sorted { $0.key.rawValue < $1.key.rawValue }
        guard !protective.isEmpty else { return }
        let (id, order) = protective[reopenRandom.int(0...(protective.count - 1))]
        do { try models[index].fill(id, order.open, at: Price("100")!) } catch { problems.append("closing fill of \(id) refused: \(error)") }
    }

    /// The broker ends a live scale-in or protective order on its own (an exchange cancel, an
    /// expiry), sometimes after filling part of it with the fill's report held back.
    private mutating func endSomething(on index: Int, _ problems: inout [String]) {
        let endable = models[index].truth.filter { entry in
            entry.value.live && models[index].machine.snapshot(of: entry.key).map { $0.role != .entry } == true
        }.sorted { $0.key.rawValue < $1.key.rawValue }
        guard !endable.isEmpty else { return }
        let (id, order) = endable[endRandom.int(0...(endable.count - 1))]
        if endRandom.int(0...1) == 0, order.open.units > 1 {
            // Filled in part first, its report delivered after the end.
            var truth = order
            let fill = Quantity(units: max(1, order.open.units / 2))
            truth.filled += fill
            models[index].truth[id] = truth
            heldCount += 1
            let report = ExecutionReport(executionID: ExecutionID("\(models[index].symbol)-E\(heldCount)"), orderID: id, symbol: models[index].symbol,
                                         side: order.side, lastQuantity: fill, lastPrice: Price("100")!,
                                         cumulativeQuantity: truth.filled, leavesQuantity: .zero)
            models[index].reports.append(report)
            held[index].append(report)
        }
        do { try models[index].endAtTheBroker(id, endRandom.int(0...1) == 0 ? .cancelled : .expired) } catch {
            problems.append("the broker's end of \(id) refused: \(error)")
        }
    }

    /// Opens a new bracket on the symbol: taken exactly when no position blocks it (by a scan
    /// of every position).
    private mutating func openAnother(on index: Int, _ problems: inout [String]) {
        reopened += 1
        let long = reopenRandom.int(0...1) == 0
        let spec = BracketSpec(positionID: PositionID("R\(index)-\(reopened)"), symbol: models[index].symbol, side: long ? .buy : .sell,
                               quantity: Quantity(units: Int64(reopenRandom.int(1...40)) * (Quantity.unitsPerShare / 2)),
                               entryType: .market, stopLoss: Price(long ? "95" : "105"), takeProfit: Price(long ? "110" : "90"), scaleIns: [])
        let blocked = models[index].machine.openingBlocker(scanningAll: true)
        do {
            try models[index].open(spec)
            if let blocked { problems.append("\(spec.positionID) opened beside \(blocked.position), which blocks it") }
        } catch {
            if blocked == nil || error.code != .positionExists { problems.append("\(spec.positionID) refused with nothing blocking it: \(error)") }
        }
    }

    /// Fills part of a random order that is live at the broker; optionally holds the report back.
    private mutating func fillSomething(_ index: Int, delay: Bool, _ problems: inout [String]) {
        let live = models[index].truth.filter { $0.value.live && $0.value.open.isPositive }.sorted { $0.key.rawValue < $1.key.rawValue }
        guard !live.isEmpty else { return }
        let (id, order) = live[random.int(0...(live.count - 1))]
        let halves = max(1, order.open.units / (Quantity.unitsPerShare / 2))
        let quantity = Quantity(units: Int64(random.int(1...Int(min(halves, 2000)))) * (Quantity.unitsPerShare / 2))
        let fill = quantity < order.open ? quantity : order.open
        if delay {
            // Fill at the broker now, deliver the report later.
            var truth = order
            truth.filled += fill
            if truth.filled == truth.quantity { truth.live = false }
            models[index].truth[id] = truth
            heldCount += 1
            let report = ExecutionReport(executionID: ExecutionID("\(models[index].symbol)-H\(held[index].count)-\(random.int(0...1_000_000))-\(heldCount)"),
                                         orderID: id, symbol: models[index].symbol, side: order.side, lastQuantity: fill,
                                         lastPrice: Price("100")!, cumulativeQuantity: truth.filled, leavesQuantity: truth.quantity - truth.filled)
            models[index].reports.append(report)
            held[index].append(report)
        } else {
            do { try models[index].fill(id, fill, at: Price("100")!) } catch { problems.append("fill of \(id) refused: \(error)") }
        }
    }

    private mutating func deliver(_ report: ExecutionReport, to index: Int, _ problems: inout [String]) {
        do { try models[index].deliver(report) } catch { problems.append("held report \(report.executionID) refused: \(error)") }
    }

    /// Rule 1 and rule 2 against the broker's truth; roles alerted as failed for good are left
    /// out until `afterRearm`. Nothing left at the broker adds to a position the wrong way.
    private func check(_ model: ModelBroker, afterRearm: Bool = false) -> [String] {
        var problems = model.machine.invariantViolations(atQuiescence: true).map(\.description)
        if !model.machine.isQuiescent { problems.append("\(model.symbol) not quiescent") }
        for id in model.machine.positionIDs {
            let snapshot = model.snapshot(id)
            let net = snapshot.netQuantity
            if model.brokerNet(id) != net { problems.append("\(id): broker net \(model.brokerNet(id)) vs \(net)") }
            let failed = afterRearm ? [] : Set(model.alerts.filter { $0.positionID == id && $0.kind != .positionFlipped }.compactMap(\.role))
            if !net.isZero {
                let adding: Side = net.units > 0 ? .buy : .sell
                for order in snapshot.orders where !order.role.isProtective {
                    if let truth = model.truth[order.id], truth.live, truth.side != adding {
                        problems.append("\(id): \(order.id) (\(order.role)) live at broker on the wrong side for net \(net)")
                    }
                }
            }
            for (role, price) in [(OrderRole.stopLoss, snapshot.stopLoss), (OrderRole.takeProfit, snapshot.takeProfit)] where !failed.contains(role) {
                let atBroker = model.brokerLive(id, role)
                if net.isZero || price == nil {
                    if !atBroker.isEmpty { problems.append("\(id): \(role) live at broker while flat or not in the bracket") }
                    continue
                }
                if atBroker.count != 1 { problems.append("\(id): \(atBroker.count) live \(role) at broker for net \(net)"); continue }
                let order = atBroker[0].1
                if order.open != net.magnitude { problems.append("\(id): \(role) open \(order.open) at broker for net \(net)") }
                if order.side != (net.units > 0 ? .sell : .buy) { problems.append("\(id): \(role) on the wrong side") }
            }
            if snapshot.status == .closed {
                let liveAtBroker = snapshot.orders.filter { model.truth[$0.id]?.live == true && !failed.contains($0.role) && $0.failure == nil }
                if !liveAtBroker.isEmpty { problems.append("\(id): closed but \(liveAtBroker.map(\.id)) live at broker") }
            }
        }
        return problems
    }
}

/// SplitMix64 for reproducible scenarios.
struct TestRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}
