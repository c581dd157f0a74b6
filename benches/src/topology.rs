//! Service topologies: the web shop of ten services, a database, a cache
//! and a queue; random ones are in [`crate::random`].

/// How one operation calls another.
#[derive(Debug, Clone)]
pub struct Call {
    /// Index of the callee service.
    pub service: usize,
    /// Index of the operation within the callee.
    pub operation: usize,
    /// Probability that the call happens in a given trace.
    pub probability: f64,
}

/// What a span of an operation looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP server (and HTTP client spans in callers).
    Http,
    /// gRPC server.
    Grpc,
    /// A database statement (client span only; the database is not traced).
    Db(&'static str),
    /// A cache command (client span only).
    Cache,
    /// Publishing to a queue (PRODUCER), consumed by the callee (CONSUMER).
    Messaging,
}

/// One operation of a service.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Span name.
    pub name: String,
    /// `http.route`, RPC method or statement.
    pub detail: String,
    /// Protocol of the server side.
    pub protocol: Protocol,
    /// Median own duration, microseconds.
    pub self_us: u64,
    /// Downstream calls.
    pub calls: Vec<Call>,
}

/// A service.
#[derive(Debug, Clone)]
pub struct Service {
    /// `service.name`.
    pub name: String,
    /// `service.version`.
    pub version: String,
    /// `telemetry.sdk.language`.
    pub language: String,
    /// Operations it serves.
    pub operations: Vec<Operation>,
    /// It records spans; an uninstrumented one passes the trace context
    /// on, so its callees' spans hang under its caller's.
    pub instrumented: bool,
}

pub(crate) fn op(
    name: &str,
    detail: &str,
    protocol: Protocol,
    self_us: u64,
    calls: Vec<Call>,
) -> Operation {
    Operation {
        name: name.to_owned(),
        detail: detail.to_owned(),
        protocol,
        self_us,
        calls,
    }
}

pub(crate) fn call(service: usize, operation: usize, probability: f64) -> Call {
    Call {
        service,
        operation,
        probability,
    }
}

/// The web shop: frontend, checkout, cart, catalog, currency, payment,
/// shipping, email, recommendation, ad; postgres, redis and kafka as
/// uninstrumented peers.
pub fn web_shop() -> Vec<Service> {
    use Protocol::*;
    // Indexes: 0 frontend, 1 checkout, 2 cart, 3 product-catalog, 4 currency,
    // 5 payment, 6 shipping, 7 email, 8 recommendation, 9 ad,
    // 10 postgres, 11 redis, 12 kafka (peers: their ops are client-only).
    vec![
        Service {
            name: "frontend".into(),
            version: "2.4.1".into(),
            language: "nodejs".into(),
            instrumented: true,
            operations: vec![
                op(
                    "GET /product/:id",
                    "/product/:id",
                    Http,
                    900,
                    vec![
                        call(3, 0, 1.0),
                        call(4, 0, 0.8),
                        call(8, 0, 0.9),
                        call(9, 0, 0.6),
                        call(2, 0, 0.5),
                    ],
                ),
                op(
                    "POST /cart/checkout",
                    "/cart/checkout",
                    Http,
                    1500,
                    vec![call(1, 0, 1.0)],
                ),
                op(
                    "GET /",
                    "/",
                    Http,
                    600,
                    vec![call(3, 1, 1.0), call(9, 0, 0.7), call(4, 0, 0.5)],
                ),
                op("POST /cart", "/cart", Http, 500, vec![call(2, 1, 1.0)]),
            ],
        },
        Service {
            name: "checkout".into(),
            version: "1.9.0".into(),
            language: "go".into(),
            instrumented: true,
            operations: vec![op(
                "oteldemo.CheckoutService/PlaceOrder",
                "PlaceOrder",
                Grpc,
                2500,
                vec![
                    call(2, 0, 1.0),
                    call(3, 0, 1.0),
                    call(4, 0, 1.0),
                    call(6, 0, 1.0),
                    call(5, 0, 1.0),
                    call(10, 0, 1.0),
                    call(12, 0, 1.0),
                    call(2, 2, 1.0),
                ],
            )],
        },
        Service {
            name: "cart".into(),
            version: "1.4.2".into(),
            language: "dotnet".into(),
            instrumented: true,
            operations: vec![
                op(
                    "oteldemo.CartService/GetCart",
                    "GetCart",
                    Grpc,
                    300,
                    vec![call(11, 0, 1.0)],
                ),
                op(
                    "oteldemo.CartService/AddItem",
                    "AddItem",
                    Grpc,
                    350,
                    vec![call(11, 1, 1.0)],
                ),
                op(
                    "oteldemo.CartService/EmptyCart",
                    "EmptyCart",
                    Grpc,
                    250,
                    vec![call(11, 2, 1.0)],
                ),
            ],
        },
        Service {
            name: "product-catalog".into(),
            version: "3.0.0".into(),
            language: "go".into(),
            instrumented: true,
            operations: vec![
                op(
                    "oteldemo.ProductCatalogService/GetProduct",
                    "GetProduct",
                    Grpc,
                    400,
                    vec![call(10, 1, 1.0)],
                ),
                op(
                    "oteldemo.ProductCatalogService/ListProducts",
                    "ListProducts",
                    Grpc,
                    800,
                    vec![call(10, 2, 1.0)],
                ),
            ],
        },
        Service {
            name: "currency".into(),
            version: "1.2.0".into(),
            language: "cpp".into(),
            instrumented: true,
            operations: vec![op(
                "oteldemo.CurrencyService/Convert",
                "Convert",
                Grpc,
                120,
                vec![],
            )],
        },
        Service {
            name: "payment".into(),
            version: "0.9.3".into(),
            language: "nodejs".into(),
            instrumented: true,
            operations: vec![op(
                "oteldemo.PaymentService/Charge",
                "Charge",
                Grpc,
                1800,
                vec![],
            )],
        },
        Service {
            name: "shipping".into(),
            version: "1.1.0".into(),
            language: "rust".into(),
            instrumented: true,
            operations: vec![op(
                "oteldemo.ShippingService/GetQuote",
                "GetQuote",
                Grpc,
                450,
                vec![],
            )],
        },
        Service {
            name: "email".into(),
            version: "1.0.4".into(),
            language: "ruby".into(),
            instrumented: true,
            operations: vec![op(
                "order-placed process",
                "order-placed",
                Messaging,
                2200,
                vec![],
            )],
        },
        Service {
            name: "recommendation".into(),
            version: "2.0.1".into(),
            language: "python".into(),
            instrumented: true,
            operations: vec![op(
                "oteldemo.RecommendationService/ListRecommendations",
                "ListRecommendations",
                Grpc,
                1100,
                vec![call(3, 1, 1.0)],
            )],
        },
        Service {
            name: "ad".into(),
            version: "1.3.0".into(),
            language: "java".into(),
            instrumented: true,
            operations: vec![op("oteldemo.AdService/GetAds", "GetAds", Grpc, 700, vec![])],
        },
        Service {
            name: "postgres".into(),
            version: "".into(),
            language: "".into(),
            instrumented: true,
            operations: vec![
                op(
                    "INSERT orders",
                    "INSERT INTO orders (id, user_id, total) VALUES ($1, $2, $3)",
                    Db("postgresql"),
                    1200,
                    vec![],
                ),
                op(
                    "SELECT products",
                    "SELECT * FROM products WHERE id = $1",
                    Db("postgresql"),
                    600,
                    vec![],
                ),
                op(
                    "SELECT products",
                    "SELECT * FROM products ORDER BY rank LIMIT 20",
                    Db("postgresql"),
                    1500,
                    vec![],
                ),
            ],
        },
        Service {
            name: "redis".into(),
            version: "".into(),
            language: "".into(),
            instrumented: true,
            operations: vec![
                op("HGET", "HGET cart:{id}", Cache, 80, vec![]),
                op("HSET", "HSET cart:{id}", Cache, 90, vec![]),
                op("DEL", "DEL cart:{id}", Cache, 60, vec![]),
            ],
        },
        Service {
            name: "kafka".into(),
            version: "".into(),
            language: "".into(),
            instrumented: true,
            operations: vec![op(
                "orders publish",
                "orders",
                Messaging,
                300,
                vec![call(7, 0, 1.0)],
            )],
        },
    ]
}
