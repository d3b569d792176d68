//! The demo app's static assets and its HTML index page, generated in code.
//!
//! Owns their bytes and content types; the caching headers come from `reply.rs`.

/// A static asset: name under `/static/`, content type and bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asset {
    pub(crate) name: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static str,
}

const CSS: &str = "\
:root { --ink: #1d2433; --accent: #2f6fde; --paper: #fbfaf7; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--ink); background: var(--paper); }
header { display: flex; align-items: center; gap: .75rem; padding: 1rem 2rem; border-bottom: 1px solid #e4e1da; }
main { max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }
a { color: var(--accent); }
code { background: #eef1f6; padding: .1rem .3rem; border-radius: 3px; }
ul.routes li { margin: .4rem 0; }
";

const JS: &str = "\
// Fetches a product and shows its ETag, to see conditional requests at work.
document.addEventListener('DOMContentLoaded', async () => {
  const out = document.querySelector('#probe');
  if (!out) return;
  const response = await fetch('/products/1');
  const product = await response.json();
  out.textContent = `${product.name}: ETag ${response.headers.get('etag')}`;
});
";

const SVG: &str = "\
<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"32\" height=\"32\" viewBox=\"0 0 32 32\">\
<rect width=\"32\" height=\"32\" rx=\"6\" fill=\"#2f6fde\"/>\
<path d=\"M6 20c4-6 8 6 12 0s6-6 8-2\" stroke=\"#fff\" stroke-width=\"3\" fill=\"none\" stroke-linecap=\"round\"/>\
</svg>
";

/// Every static asset.
pub(crate) const ASSETS: [Asset; 3] = [
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: CSS,
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: JS,
    },
    Asset {
        name: "logo.svg",
        content_type: "image/svg+xml",
        body: SVG,
    },
];

/// The asset called `name`.
pub(crate) fn asset(name: &str) -> Option<Asset> {
    ASSETS.iter().find(|asset| asset.name == name).copied()
}

/// The index page: what the demo serves and a link to try each route.
pub(crate) const INDEX: &str = "<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>Sluice demo shop</title>
<link rel=\"stylesheet\" href=\"/static/app.css\">
<script src=\"/static/app.js\" defer></script>
</head>
<body>
<header><img src=\"/static/logo.svg\" alt=\"\" width=\"32\" height=\"32\"><strong>Sluice demo shop</strong></header>
<main>
<p>A small catalogue served from SQLite, with the caching headers a real origin sends.</p>
<ul class=\"routes\">
<li><a href=\"/products/1\"><code>GET /products/{id}</code></a>: one product</li>
<li><a href=\"/products?category=books&amp;page=1&amp;per_page=20\"><code>GET /products?category=&amp;page=&amp;per_page=</code></a>: a page of products</li>
<li><a href=\"/search?q=lamp\"><code>GET /search?q=</code></a>: search by name</li>
<li><a href=\"/users/1/orders\"><code>GET /users/{id}/orders</code></a>: one user's orders (private)</li>
<li><code>POST /products</code>, <code>PUT /products/{id}</code>, <code>DELETE /products/{id}</code>: edit the catalogue</li>
<li><a href=\"/static/app.css\"><code>GET /static/{name}</code></a>: immutable assets</li>
<li><a href=\"/healthz\"><code>GET /healthz</code></a>: liveness</li>
</ul>
<p id=\"probe\"></p>
</main>
</body>
</html>
";
