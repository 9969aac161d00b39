/** The runtimes this package knows how to serve. */
export type RuntimeName = "node" | "deno" | "bun" | "workerd" | "web";

/** Operating system families that matter for file locations (Azure Arc). */
export type OperatingSystem = "linux" | "windows" | "darwin" | "other";

/**
 * What differs per runtime, behind one small interface. The core receives a `Platform` and never
 * looks at `process`, `Deno` or `Bun` itself. A capability a runtime lacks is left out; the
 * back-end that needs it then fails with an error naming the runtime and the capability.
 */
export interface Platform {
  /** The runtime, for messages. */
  readonly name: RuntimeName;
  /** The operating system, where the runtime can tell; undefined in Workers and browsers. */
  readonly os: OperatingSystem | undefined;
  /** Reads one environment variable; undefined when unset or not readable (Deno without --allow-env). */
  getEnv(name: string): string | undefined;
  /** Whether a file exists. Synchronous because back-end detection is. Absent without a file system. */
  fileExists?(path: string): boolean;
  /**
   * Reads a small UTF-8 text file. Checks the size before reading and rejects a file larger than
   * `maxBytes` (an Error whose message says so). Absent without a file system.
   */
  readTextFile?(path: string, options: { maxBytes: number }): Promise<string>;
  /**
   * The real location of a file: symbolic links resolved in every component of the path, so a
   * caller can refuse a link that leads out of a trusted folder. Rejects when the path does not
   * exist. Absent without a file system.
   */
  realPath?(path: string): Promise<string>;
  /**
   * Where the Azure Arc agent's files are, when they are not at the agent's documented locations:
   * set by tests (a temporary folder) and unusual installs. Unset in production. Windows defaults
   * read `ProgramFiles` and `ProgramData` through `getEnv`.
   */
  readonly azureArc?: AzureArcLocations | undefined;
  /**
   * A fetch for one https request whose server must present a leaf certificate with this SHA-1
   * thumbprint (40 lower-case hex characters). Chain and host name are not checked: the pin is the
   * trust anchor. The request, with its headers, is written only after the pin matched; on a
   * mismatch it rejects with an Error named `CertificateMismatchError` and the server receives nothing. Redirects are
   * returned, never followed; `init.signal` aborts the connection, the request and the body. One
   * connection per call, closed after the response. Present on Node, Bun and Deno (through
   * `node:tls`); absent in Workers and browsers, which cannot pin.
   */
  pinnedFetch?(
    input: string | URL | Request,
    init: RequestInit | undefined,
    sha1Thumbprint: string,
  ): Promise<Response>;
}

/** Overrides of the Azure Arc agent's file locations (see {@link Platform.azureArc}). */
export interface AzureArcLocations {
  /**
   * The folder the agent writes its challenge key files to, with a trailing separator.
   * @default `/var/opt/azcmagent/tokens/` on Linux, `%ProgramData%\AzureConnectedMachineAgent\Tokens\` on Windows
   */
  readonly tokensFolder?: string | undefined;
  /**
   * The agent executable whose presence selects Azure Arc.
   * @default `/opt/azcmagent/bin/himds` on Linux, `%ProgramFiles%\AzureConnectedMachineAgent\himds.exe` on Windows
   */
  readonly agentFile?: string | undefined;
}
