// The page of the live view, compiled into slpc: the files under slpc/web/page/ are read at build
// time (`bun build --compile` embeds them as text), so the view needs nothing beside the binary,
// loads nothing from elsewhere, and works offline.

import html from "./page/index.html" with { type: "text" };
import css from "./page/page.css" with { type: "text" };
import script from "./page/page.js" with { type: "text" };

export interface Asset {
  type: string;
  body: Buffer;
}

/** The page's files by path. */
export const PAGE: ReadonlyMap<string, Asset> = new Map([
  ["/", { type: "text/html; charset=utf-8", body: Buffer.from(html) }],
  ["/page.css", { type: "text/css; charset=utf-8", body: Buffer.from(css) }],
  ["/page.js", { type: "text/javascript; charset=utf-8", body: Buffer.from(script) }],
]);
