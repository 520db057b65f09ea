package org.megatronj.cli;

import picocli.CommandLine;

/** {@code megatron --version}: the project version (from the jar manifest) and the running JVM. */
final class VersionProvider implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
        String version = Megatron.class.getPackage().getImplementationVersion();
        return new String[] {
                "Megatron-J " + (version == null ? "(development build)" : version),
                "Java " + Runtime.version() + " (" + System.getProperty("java.vendor") + ", " + System.getProperty("java.home") + ")"
        };
    }
}
