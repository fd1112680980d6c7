import IdlegateHTTP

/// The responses idlegate writes itself. Short plain bodies: nothing from the request, the upstream
/// or the error is echoed (no internal detail, no session id, no reflected input).
enum ErrorResponse {
    static func bytes(_ status: Int) -> [UInt8] {
        let reason = HTTPStatus.reason(status)
        let body = "\(status) \(reason)\n"
        let head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        return Array((head + body).utf8)
    }

    static let continueInterim: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// The redirect listener's answer: the same URL over https, permanently (308 keeps the method).
    static func redirect(_ location: String) -> [UInt8] {
        Array(("HTTP/1.1 308 Permanent Redirect\r\nLocation: \(location)\r\nContent-Length: 0\r\n\r\n").utf8)
    }

    /// To a client that sent plain HTTP to the HTTPS port (written outside TLS, before closing).
    static let plainHTTPOnHTTPS: [UInt8] = {
        let body = "400 Bad Request: this port speaks HTTPS\n"
        return Array(("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n" + body).utf8)
    }()

}
