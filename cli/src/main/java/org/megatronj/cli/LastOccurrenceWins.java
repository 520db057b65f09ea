package org.megatronj.cli;

import java.util.ArrayList;
import java.util.Map;
import java.util.Stack;

import picocli.CommandLine.IParameterPreprocessor;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * Megatron's argparse semantics for a flag that takes several values ({@code nargs='+'}): a repeated flag keeps the
 * values of its last occurrence (picocli would add them to the earlier ones). Each occurrence empties the list before
 * picocli adds its values.
 */
public final class LastOccurrenceWins implements IParameterPreprocessor {
    @Override
    public boolean preprocess(Stack<String> args, CommandSpec commandSpec, ArgSpec argSpec, Map<String, Object> info) {
        argSpec.setValue(new ArrayList<>());
        return false;   // picocli goes on to read this occurrence's values
    }
}
