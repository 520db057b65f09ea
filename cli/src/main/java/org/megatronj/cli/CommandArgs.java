package org.megatronj.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import picocli.CommandLine;

import java.util.List;
import java.util.ArrayList;

/** The options a command was given, as JSON for checkpoint metadata (Megatron keeps its args in every checkpoint). */
final class CommandArgs {
    private static final ObjectMapper JSON = new ObjectMapper();

    private CommandArgs() {
    }

    static ObjectNode toJson(CommandLine.ParseResult parsed) {
        ObjectNode node = JSON.createObjectNode();
        CommandLine.ParseResult leaf = parsed;
        while (leaf.hasSubcommand()) {
            leaf = leaf.subcommand();
        }
        node.put("command", String.join(" ", commandPath(leaf)));
        for (CommandLine.Model.OptionSpec o : leaf.matchedOptions()) {
            Object v = o.getValue();
            String key = o.longestName().replaceFirst("^-+", "");
            if (v instanceof List<?> list) {
                var arr = node.putArray(key);
                list.forEach(x -> arr.add(String.valueOf(x)));
            } else {
                node.put(key, String.valueOf(v));
            }
        }
        return node;
    }

    private static List<String> commandPath(CommandLine.ParseResult leaf) {
        ArrayList<String> names = new ArrayList<>();
        for (CommandLine c = leaf.commandSpec().commandLine(); c != null; c = c.getParent()) {
            names.addFirst(c.getCommandName());
        }
        return names;
    }
}
