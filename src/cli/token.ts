import type { CommandDef } from "citty";
import {
  DETECTION_ORDER,
  ManagedIdentityClient,
  type ManagedIdentitySource,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../index.ts";
import type { CliIo } from "../platform/cli-process.ts";
import { command } from "./command.ts";
import { CliUsageError } from "./errors.ts";

/** `managed-identity token`: a token for a resource, like `az account get-access-token`. */
export const tokenCommand: CommandDef = command({
  meta: {
    name: "token",
    description:
      "Acquire an access token for a resource from the managed identity of this host (or an emulator the environment points at). Prints the token alone, or JSON with --json.",
  },
  args: {
    resource: {
      type: "string",
      description:
        "The resource (or a scope ending in /.default), e.g. https://management.azure.com",
      valueHint: "URL",
      required: true,
    },
    "client-id": {
      type: "string",
      description: "A user-assigned identity's client id",
      valueHint: "ID",
    },
    "object-id": {
      type: "string",
      description: "A user-assigned identity's object id",
      valueHint: "ID",
    },
    "resource-id": {
      type: "string",
      description: "A user-assigned identity's ARM resource id",
      valueHint: "ID",
    },
    source: {
      type: "string",
      description: `Use this back-end instead of detecting one (${DETECTION_ORDER.map((definition) => definition.name).join(", ")})`,
      valueHint: "NAME",
    },
    json: { type: "boolean", description: "Print the token and its details as JSON" },
  },
  async run({ args, data }) {
    const io = data as CliIo;
    const ids = (
      [
        ["clientId", args["client-id"]],
        ["objectId", args["object-id"]],
        ["resourceId", args["resource-id"]],
      ] as const
    ).filter((entry): entry is readonly [(typeof entry)[0], string] => entry[1] !== undefined);
    if (ids.length > 1)
      throw new CliUsageError("Give at most one of --client-id, --object-id and --resource-id.");
    const [selected] = ids;
    if (selected && selected[1].trim() === "")
      throw new CliUsageError(
        `--${selected[0].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs a value.`,
      );
    const identity = selected
      ? new UserAssignedManagedIdentity({ [selected[0]]: selected[1] } as { clientId: string })
      : new SystemAssignedManagedIdentity();
    const names = DETECTION_ORDER.map((definition) => definition.name as string);
    if (args.source !== undefined && !names.includes(args.source))
      throw new CliUsageError(`Unknown source "${args.source}"; known: ${names.join(", ")}.`);
    const client = new ManagedIdentityClient(identity, {
      env: io.env,
      ...(args.source === undefined ? {} : { source: args.source as ManagedIdentitySource }),
    });
    const token = await client.acquireTokenForClient({ resource: args.resource });
    if (!args.json) {
      io.out(token.accessToken);
      return;
    }
    io.out(
      JSON.stringify(
        {
          accessToken: token.accessToken,
          tokenType: token.tokenType,
          expiresOn: token.expiresOn,
          expiresOnDate: new Date(token.expiresOn * 1000).toISOString(),
          expiresIn: token.expiresIn,
          resource: token.resource,
          source: token.source,
          tokenSource: token.tokenSource,
        },
        null,
        2,
      ),
    );
  },
});
