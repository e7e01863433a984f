import FillGuard
import FillGuardCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import FillGuardFIX

/// A FIX counterparty scripted message by message over a loopback socket, for session
/// behaviour the QuickFIX test exchange cannot be made to show (a gap it fills late). Its
/// calls block: run it on a thread of its own (`run`), never on Swift's task pool.
final class ScriptedPeer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private var connection: Int32 = -1
    private var decoder = FIXFrameDecoder()
    /// The messages the broker sent, in the order they came.
    private(set) var received: [FIXMessage] = []

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 1) == 0 else {
            close(listener)
            throw POSIXError(.EADDRNOTAVAIL)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        if connection >= 0 { close(connection) }
        close(listener)
    }

    /// The broker's configuration for a scripted counterparty: the harness's, with 30 s for the
    /// Logon's answer (the script runs on a thread of its own, which a loaded machine, or a
    /// sanitizer's, can start late).
    static func configuration(port: Int, requestTimeout: Int64 = 10_000_000_000) -> FIXBrokerConfiguration {
        var configuration = Harness.configuration(port: port, requestTimeout: requestTimeout)
        configuration.session.logonTimeout = 30
        return configuration
    }

    /// Runs `script` on a thread of its own and returns what it returned.
    func run<T: Sendable>(_ script: @escaping @Sendable (ScriptedPeer) -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: script(self)) }.start()
        }
    }

    /// Waits up to `seconds` for the broker to connect.
    func accept(within seconds: Int32) -> Bool {
        var entry = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, seconds * 1000) == 1 else { return false }
        connection = Glibc.accept(listener, nil, nil)
        return connection >= 0
    }

    /// The next message the broker sends, nil when none came within `seconds` or it closed.
    func receive(within seconds: Int32) -> FIXMessage? {
        while true {
            if let frame = try? decoder.next(), let message = try? FIXCodec.decode(frame) {
                received.append(message)
                return message
            }
            var entry = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, seconds * 1000) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
            guard count > 0 else { return nil }
            decoder.append(buffer[0..<count])
        }
    }

    /// Sends "35=...|..." (SOH written as "|") with its header's CompIDs and `seq`.
    func send(_ msgType: String, seq: Int, _ body: String = "", possDup: Bool = false) {
        let header = "35=\(msgType)|49=EX|56=FG|34=\(seq)|52=\(FIXTimestamp.format(epochNanoseconds: Int64(Date().timeIntervalSince1970 * 1e9)))|"
        let bytes = frame(header + (possDup ? "43=Y|122=\(FIXTimestamp.format(epochNanoseconds: 0))|" : "") + body)
        _ = bytes.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
    }
}

@Suite("FIXBroker against a scripted counterparty", .serialized, .timeLimit(.minutes(5)))
struct ScriptedPeerTests {
    /// The counterparty's messages 3 (an execution report the router refuses, answered with a
    /// Reject) and 4 (a TestRequest, answered with a Heartbeat) come before its 2, so both wait
    /// until the gap is filled; then the two answers are sent in one pass. The Reject's number
    /// was given out after the Heartbeat's: it went on the wire first (N+1 before N), which a
    /// strict counterparty answers with a Logout for a sequence number too low.
    @Test("answers sent while a filled gap's messages are taken in keep sequence order on the wire")
    func answersAfterAGapKeepSequenceOrder() async throws {
        let peer = try ScriptedPeer()
        let broker = FIXBroker(configuration: ScriptedPeer.configuration(port: peer.port), logger: quietLogger)
        // Signalled once both answers came: the test then stops the broker, whose Logout the
        // script answers.
        let (answered, signal) = AsyncStream<Void>.makeStream()
        let script = Task {
            await peer.run { peer -> [String] in
                defer { signal.finish() }
                guard peer.accept(within: 20), let logon = peer.receive(within: 20), logon.msgType == "A" else { return ["no Logon"] }
                peer.send("A", seq: 1, "98=0|108=5|")
                let report = "37=B1|11=X1|17=E1|150=Z|39=0|55=GLD|54=1|151=0|14=0|6=0|"
                peer.send("8", seq: 3, report)
                peer.send("1", seq: 4, "112=T1|")
                guard let resend = peer.receive(within: 20), resend.msgType == "2" else { return ["no ResendRequest: \(peer.received)"] }
                peer.send("4", seq: 2, "123=Y|36=3|", possDup: true)
                var sawReject = false
                var sawHeartbeat = false
                while !(sawReject && sawHeartbeat), let message = peer.receive(within: 20) {
                    if message.msgType == "3" { sawReject = true }
                    if message.msgType == "0", message[112] == "T1" { sawHeartbeat = true }
                }
                let sent = peer.received.map { "\($0.msgType):\($0.int(34) ?? -1)" }
                signal.yield()
                while let message = peer.receive(within: 20), message.msgType != "5" {}
                peer.send("5", seq: 5)
                return sent
            }
        }
        try await broker.start()
        for await _ in answered { break }
        await broker.stop()
        let sent = await script.value
        let numbers = sent.compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }
        #expect(sent.contains { $0.hasPrefix("3:") } && sent.contains { $0.hasPrefix("0:") }, "\(sent)")
        #expect(numbers == numbers.sorted() && Set(numbers).count == numbers.count, "the broker's messages in the order sent: \(sent)")
    }

    /// A mass status answer whose reports keep coming past the request timeout (a large
    /// account, a slow counterparty) is read whole: the timeout runs from its latest report. It
    /// was cut at the timeout: with TotNumReports, the request failed (recovery then went on
    /// without the broker's list); with neither 911 nor 912, it was taken whole with the reports
    /// that had come by then, and the rest of the account's orders were "missing".
    @Test("a mass status answer still streaming in at the request timeout is read whole", arguments: [true, false])
    func massStatusStreamingPastTheTimeout(counted: Bool) async throws {
        let peer = try ScriptedPeer()
        // A timeout of 1.5 s; five reports 400 ms apart take 1.6 s after the first.
        let broker = FIXBroker(configuration: ScriptedPeer.configuration(port: peer.port, requestTimeout: 1_500_000_000), logger: quietLogger)
        let script = Task {
            await peer.run { peer -> String? in
                guard peer.accept(within: 20), let logon = peer.receive(within: 20), logon.msgType == "A" else { return "no Logon" }
                peer.send("A", seq: 1, "98=0|108=5|")
                var request: FIXMessage?
                while let message = peer.receive(within: 20) {
                    if message.msgType == "AF" { request = message; break }
                }
                guard let key = request?[584] else { return "no OrderMassStatusRequest: \(peer.received)" }
                for index in 1...5 {
                    if index > 1 { usleep(400_000) }  // the counterparty's pace, not a synchronisation
                    let count = counted ? "911=5|912=\(index == 5 ? "Y" : "N")|" : ""
                    peer.send("8", seq: 1 + index, "584=\(key)|\(count)37=B\(index)|11=S\(index)|17=Q\(index)|150=I|39=0|55=SYM\(index)|54=2|40=3|99=90|38=100|151=100|14=0|6=0|59=1|")
                }
                while let message = peer.receive(within: 20), message.msgType != "5" {}
                peer.send("5", seq: 7)
                return nil
            }
        }
        try await broker.start()
        let statuses = try await broker.massStatus()
        await broker.stop()
        #expect(await script.value == nil)
        #expect(statuses.map(\.clOrdID).sorted() == ["S1", "S2", "S3", "S4", "S5"], "\(statuses.map(\.clOrdID))")
    }
}
