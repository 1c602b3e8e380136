import Hummingbird

extension APIServer {
    /// `GET /`: the admin page (one self-contained HTML document, no external resources).
    func addPageRoutes(to router: Router<BasicRequestContext>) {
        router.get("/") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                    .contentSecurityPolicy: "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                ],
                body: .init(byteBuffer: ByteBuffer(string: AdminPage.html)))
        }
    }
}
