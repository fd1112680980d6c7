import IdlegateHTTP
import IdlegateIO

/// After a 101: the WebSocket tunnel, and its close when the session expires.
extension ClientConnection {
    func enterTunnel(_ x: Exchange) {
        state = .tunnel
        setDeadline(.tunnel, settings.timeouts.tunnelIdle)
        if !inbound.isEmpty, let up = x.upstream {
            inbound.withBytes { _ = up.channel.write($0) }
            inbound.clear()
        }
        inboundUnparsed = false
    }

    func pumpTunnel() -> Bool {
        guard let x = exchange, let up = x.upstream else { closeNow(); return false }
        var progressed = false
        if up.channel.flush() == .failed || client.flush() == .failed {
            closeNow()
            return false
        }
        if !up.channel.hasQueuedOutput {
            switch client.read(into: worker.scratch) {
            case .bytes(let n):
                up.channel.write(UnsafeRawBufferPointer(rebasing: worker.scratch[0..<n]))
                progressed = true
            case .eof, .failed:
                closeNow()
                return false
            case .wouldBlock:
                break
            }
        }
        if !client.hasQueuedOutput {
            switch up.channel.read(into: worker.scratch) {
            case .bytes(let n):
                let bytes = UnsafeRawBufferPointer(rebasing: worker.scratch[0..<n])
                if closeTunnelAtBoundary, let end = serverFrames.feed(bytes, stopAtBoundary: true) {
                    client.write(UnsafeRawBufferPointer(rebasing: bytes[0..<end]))
                    sendSessionExpiredClose()
                    return true
                }
                if !closeTunnelAtBoundary { serverFrames.feed(bytes) }
                client.write(bytes)
                progressed = true
            case .eof, .failed:
                up.close()
                x.upstream = nil
                exchange = nil
                state = .closing
                return true
            case .wouldBlock:
                break
            }
        }
        if progressed { setDeadline(.tunnel, settings.timeouts.tunnelIdle) }
        return progressed
    }

    /// Called on every tick: a tunnel whose session expired (its HTTP requests stopped; WebSocket
    /// frames never count) gets Odoo's close code 4001, SESSION_EXPIRED, between two frames.
    func checkTunnel() {
        guard state == .tunnel, !closeTunnelAtBoundary, let x = exchange, x.session.enforce, x.session.key != nil else { return }
        guard settings.gate.tunnelSessionEnded(of: x.session) else { return }
        closeTunnelAtBoundary = true
        if serverFrames.atBoundary {
            sendSessionExpiredClose()
            drive()
        }
    }

    func sendSessionExpiredClose() {
        client.write(WebSocketFrames.closeFrame(code: 4001, reason: "session expired"))
        exchange?.upstream?.close()
        exchange?.upstream = nil
        exchange = nil
        state = .closing
    }
}
