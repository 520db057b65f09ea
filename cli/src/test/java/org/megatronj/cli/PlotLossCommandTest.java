package org.megatronj.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PlotLossCommandTest {
    @TempDir
    Path dir;

    @Test
    void drawsAPngWithTheTrainAndValidationCurves() throws Exception {
        StringBuilder csv = new StringBuilder("split,iteration,consumed_samples,lm_loss,learning_rate,grad_norm\n");
        for (int i = 1; i <= 50; i++) {
            csv.append("train,").append(i).append(',').append(8 * i).append(',').append(10 * Math.exp(-i / 20.0) + 1).append(",0.001,1.2\n");
        }
        csv.append("valid,25,200,3.9,,\nvalid,50,400,2.1,,\n");
        Path file = dir.resolve("loss.csv");
        Files.writeString(file, csv);
        Path png = dir.resolve("out/loss.png");
        CliRun run = CliRun.of("plot-loss", file.toString(), "-o", png.toString(), "--width", "640", "--height", "400");
        assertEquals(0, run.code(), run.toString());
        assertTrue(run.out().contains("(52 points)"), run.out());
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(640, img.getWidth());
        assertEquals(400, img.getHeight());
        int blue = 0;
        int orange = 0;
        for (int x = 0; x < img.getWidth(); x++) {
            for (int y = 0; y < img.getHeight(); y++) {
                int rgb = img.getRGB(x, y) & 0xffffff;
                blue += rgb == 0x1f77b4 ? 1 : 0;
                orange += rgb == 0xff7f0e ? 1 : 0;
            }
        }
        assertTrue(blue > 100 && orange > 20, "curves drawn: " + blue + " blue, " + orange + " orange pixels");
    }

    @Test
    void severalRunsShareOnePlotWithOneColourPerRun() throws Exception {
        Path a = dir.resolve("cpu.csv");
        Path b = dir.resolve("gpu.csv");
        Files.writeString(a, "split,iteration,consumed_samples,lm_loss,learning_rate,grad_norm\ntrain,1,8,9.0,0.001,1\ntrain,2,16,7.0,0.001,1\n");
        Files.writeString(b, "split,iteration,consumed_samples,lm_loss,learning_rate,grad_norm\ntrain,1,8,9.1,0.001,1\ntrain,2,16,6.0,0.001,1\n");
        Path png = dir.resolve("cmp.png");
        CliRun run = CliRun.of("plot-loss", a.toString(), b.toString(), "--labels", "cpu fp32,cuda bf16", "-o", png.toString());
        assertEquals(0, run.code(), run.toString());
        BufferedImage img = ImageIO.read(png.toFile());
        int first = 0;
        int second = 0;
        for (int x = 0; x < img.getWidth(); x++) {
            for (int y = 0; y < img.getHeight(); y++) {
                int rgb = img.getRGB(x, y) & 0xffffff;
                first += rgb == 0x1f77b4 ? 1 : 0;
                second += rgb == 0xff7f0e ? 1 : 0;
            }
        }
        assertTrue(first > 100 && second > 100, "one curve per run: " + first + " and " + second + " pixels");

        CliRun wrong = CliRun.of("plot-loss", a.toString(), b.toString(), "--labels", "only-one", "-o", png.toString());
        assertEquals(1, wrong.code(), wrong.toString());
        assertTrue(wrong.err().contains("--labels names 1 runs but 2 CSV files"), wrong.err());
    }

    @Test
    void aFileThatIsNotALossCsvIsRefused() throws Exception {
        Path file = dir.resolve("x.csv");
        Files.writeString(file, "a,b\n1,2\n");
        CliRun run = CliRun.of("plot-loss", file.toString(), "-o", dir.resolve("x.png").toString());
        assertEquals(1, run.code(), run.toString());
        assertTrue(run.err().contains("x.csv:1: expected the header"), run.err());
    }
}
