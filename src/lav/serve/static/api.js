// The page talks to the server through these calls only (same origin, JSON errors as {"error": ...}).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function check(response) {
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
  } catch (_) {
    /* not JSON: keep the status line */
  }
  throw new ApiError(response.status, message);
}

export async function getJson(path) {
  return (await check(await fetch(path, { headers: { Accept: "application/json" } }))).json();
}

export async function getBuffer(path) {
  return (await check(await fetch(path))).arrayBuffer();
}

export async function postForm(path, form) {
  return (await check(await fetch(path, { method: "POST", body: form }))).json();
}

export async function del(path) {
  return (await check(await fetch(path, { method: "DELETE" }))).json();
}

export function enc(id) {
  return encodeURIComponent(id);
}
