// Runs the typed client against a live credgate (CREDGATE_URL,
// CREDGATE_TOKEN of an integration_admin) and checks every answer against
// the JSON schema generated from client.ts's own types (dist/schema.json):
// an answer a typed client would misread (a null where the type says string
// or absent, an object where it says string) fails the run. Prints one JSON
// line with what it checked.
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import { CredgateClient, expiryLevel } from "./client";

function must<T>(cond: T, what: string): asserts cond {
  if (!cond) {
    throw new Error(what);
  }
}

async function main(): Promise<void> {
  const base = process.env["CREDGATE_URL"];
  const token = process.env["CREDGATE_TOKEN"];
  must(base && token, "CREDGATE_URL and CREDGATE_TOKEN are required");
  const c = new CredgateClient(base, token);
  const now = new Date();
  const in20Days = new Date(now.getTime() + 20 * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");

  const created = await c.createService({ name: "Stripe", type: "payment_gateway", base_url: "https://api.stripe.com", metadata: { team: "billing" } });
  must(created.status === 201, `create: ${created.status}`);
  const id = created.body.id;
  must((await c.getService(id)).body.name === "Stripe", "get service");

  const put = await c.setCredentials(id, { api_key: "sk_test_seed", environment: "production" }, in20Days);
  must(put.status === 200, `put credentials: ${put.status}`);
  const creds = await c.getCredentials(id);
  must(creds.body.credentials["api_key"] === "sk_test_seed", "credentials values");
  must(expiryLevel(creds.body, now) === "warn", `monitoring a credential expiring in 20 days: ${expiryLevel(creds.body, now)}`);

  const plain = await c.createService({ name: "Jira" });
  await c.setCredentials(plain.body.id, { api_key: "jira_seed" });
  const noExpiry = await c.getCredentials(plain.body.id);
  must(expiryLevel(noExpiry.body, now) === "none", "a credential without expiry");

  must((await c.listServices()).body.services.length >= 2, "list");
  const missing = await c.getMissingService("no-such-service");
  must(missing.status === 404 && missing.body.error.code === "SERVICE_NOT_FOUND", "missing service");

  // Seed 002: the credentials family, credentialId as a bare UUID.
  const cred = await c.getCredential(id);
  must(cred.status === 200 && cred.body.data.apiKey === "sk_test_seed", "both families read one record");
  const uuid = cred.body.data.id.replace(/^cred-/, "");
  must((await c.getCredential(id, uuid)).body.data.id === cred.body.data.id, "a bare UUID names the credential");
  const bad = await c.getCredentialError(id, "not-a-uuid");
  must(bad.status === 400 && bad.body.error.code === "INVALID_PARAMETER" && bad.body.error.details.includes("credentialId"), "seed 002's error");

  const schema = JSON.parse(readFileSync(`${__dirname}/schema.json`, "utf8")) as { definitions: Record<string, object> };
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addSchema(schema, "client");
  const failures: string[] = [];
  for (const s of c.seen) {
    const validate = ajv.getSchema(`client#/definitions/${s.type}`);
    must(validate, `no schema for ${s.type}`);
    if (!validate(s.body)) {
      failures.push(`${s.type} (${s.status}): ${ajv.errorsText(validate.errors)} in ${JSON.stringify(s.body)}`);
    }
  }
  console.log(JSON.stringify({ checked: c.seen.length, types: [...new Set(c.seen.map((s) => s.type))].sort(), failures }));
  if (failures.length > 0) {
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});
