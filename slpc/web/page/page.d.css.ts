// What `import ... with { type: "text" }` gives slpc/web/page.ts: the file as a string.
declare const text: string;
export default text;
