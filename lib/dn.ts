// Issuer matching (--issuer). A distinguished name is kept as its attributes in X.500 order
// (country first), each as [TYPE, value], so that the ways people write one compare equal:
// OpenSSL's one-line form, RFC 2253 / RFC 4514, and node:crypto's one attribute a line.

export type DistinguishedName = [type: string, value: string][];

const TYPE_ALIASES: Record<string, string> = { E: "EMAILADDRESS", "1.2.840.113549.1.9.1": "EMAILADDRESS", S: "ST" };

function attribute(text: string, source: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new Error(`'${source}' is not a distinguished name: '${text}' lacks TYPE=`);
  const type = text.slice(0, eq).trim().toUpperCase();
  return [TYPE_ALIASES[type] ?? type, text.slice(eq + 1)];
}

/** Splits on `separator` where it is not escaped by a backslash; keeps the escapes. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts = [""];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "\\" && i + 1 < text.length) parts[parts.length - 1] += ch + text[++i];
    else if (ch === separator) parts.push("");
    else parts[parts.length - 1] += ch;
  }
  return parts;
}

/** Undoes RFC 4514 escapes: `\,` and the like, and `\C3\A9` hex pairs (UTF-8). */
function unescapeValue(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] === "\\" && /^[0-9A-Fa-f]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      if (value[i] === "\\") i++;
      bytes.push(...Buffer.from(value[i] ?? "", "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/**
 * Parses a DN in OpenSSL's one-line form (`/C=US/O=Example/CN=Example CA`) or in RFC 2253 /
 * RFC 4514 form (`CN=Example CA,O=Example,C=US`, which lists the attributes the other way round).
 */
export function parseDN(text: string): DistinguishedName {
  const trimmed = text.trim();
  if (trimmed === "") throw new Error("empty distinguished name");
  if (trimmed.startsWith("/")) {
    return splitUnescaped(trimmed.slice(1), "/").flatMap((rdn) => rdnAttributes(rdn, text, false));
  }
  return splitUnescaped(trimmed, ",")
    .reverse()
    .flatMap((rdn) => rdnAttributes(rdn, text, true));
}

/** The issuer or subject of a node:crypto X509Certificate: one `TYPE=value` a line, X.500 order. */
export function dnOfCertificate(name: string): DistinguishedName {
  return name
    .split("\n")
    .filter((line) => line !== "")
    .flatMap((line) => rdnAttributes(line, name, false));
}

/**
 * The attributes of one RDN. A multi-valued one (`O=Example + CN=CA`) is a set: its attributes
 * are trimmed around the `+`, and sorted, since DER stores them in an order people do not write.
 */
function rdnAttributes(rdn: string, source: string, trim: boolean): DistinguishedName {
  const parts = splitUnescaped(rdn, "+");
  const clean = trim || parts.length > 1 ? trimUnescaped : (part: string) => part;
  const attributes = parts
    .map((part) => attribute(clean(part), source))
    .map(([type, value]): [string, string] => [type, unescapeValue(clean(value))]);
  const key = ([type, value]: [string, string]) => `${type}\0${value}`;
  if (attributes.length > 1) attributes.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return attributes;
}

/** Trims spaces at both ends, but not one escaped with a backslash (`\ `). */
function trimUnescaped(text: string): string {
  return text.trimStart().replace(/(?<!\\)\s+$/, "");
}

export function sameDN(a: DistinguishedName, b: DistinguishedName): boolean {
  return a.length === b.length && a.every(([type, value], i) => type === b[i]![0] && value === b[i]![1]);
}

/** OpenSSL's one-line form, for log lines. */
export function formatDN(dn: DistinguishedName): string {
  return dn
    .map(([type, value]) => `/${type === "EMAILADDRESS" ? "emailAddress" : type}=${value.replace(/\//g, "\\/")}`)
    .join("");
}
