// REST calls with the browser's session: the HttpOnly `br_access` cookie goes with every request
// under /api, and writes echo the `br_csrf` cookie in `X-CSRF-Token` (src/http/authenticate.rs).
// No token is ever kept by this script. An expired access cookie is renewed once per call
// through `POST /auth/refresh`, which reads the HttpOnly `br_refresh` cookie.

const BASE = "/api/v1";

/** A refused call, with the server's stable error code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function csrfToken(): string {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "br_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const init: RequestInit = { method, headers, credentials: "same-origin" };
  if (body instanceof FormData) {
    // Multipart (file uploads): the browser writes the Content-Type with its boundary.
    init.body = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(BASE + path, init);
}

async function refresh(): Promise<boolean> {
  const response = await send("POST", "/auth/refresh");
  return response.ok;
}

async function failure(response: Response): Promise<ApiError> {
  let code = "internal";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, code, message);
}

/** Calls the API; a 401 on an expired session is retried once after a refresh. */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response = await send(method, path, body);
  if (response.status === 401 && !path.startsWith("/auth/") && (await refresh())) {
    response = await send(method, path, body);
  }
  if (!response.ok) throw await failure(response);
  // 204, and 202 answers such as `POST /auth/password-reset`, have no body.
  const text = await response.text();
  return (text === "" ? undefined : JSON.parse(text)) as T;
}
