* ota_folded_cascode: single-ended folded-cascode OTA with NMOS input pair folded into PMOS cascodes and a low-voltage NMOS cascode mirror
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_in=16u l_in=180n w_tail=8u l_tail=360n w_ps=16u l_ps=360n w_pc=16u l_pc=180n
.param w_nc=8u l_nc=180n w_nm=8u l_nm=360n ibias=20u vb_pc=0.3 vb_nc=0.55
.param cl=200f vcm=0.6 vshift=0.1
Vdd vdd 0 DC 1.0
* ---- bias network: tail diode, mirrored into a PMOS diode that biases the folding sources ----
Iref vdd vbn DC {ibias}
Mb1 vbn vbn 0 0 nmos45 w={w_tail} l={l_tail}
Mb2 vbp vbn 0 0 nmos45 w={w_tail} l={l_tail}
Mb3 vbp vbp vdd vdd pmos45 w={w_ps} l={l_ps}
Vbpc vbpc 0 DC {vb_pc}
Vbnc vbnc 0 DC {vb_nc}
* ---- input pair and tail ----
M0 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 f1 inp tail 0 nmos45 w={w_in} l={l_in}
M2 f2 inn tail 0 nmos45 w={w_in} l={l_in}
* ---- folding PMOS current sources and PMOS cascodes ----
M3 f1 vbp vdd vdd pmos45 w={w_ps} l={l_ps}
M4 f2 vbp vdd vdd pmos45 w={w_ps} l={l_ps}
M5 x vbpc f1 vdd pmos45 w={w_pc} l={l_pc}
M6 out vbpc f2 vdd pmos45 w={w_pc} l={l_pc}
* ---- NMOS cascode mirror (gates of bottom devices tied to x) ----
M7 x vbnc s1 0 nmos45 w={w_nc} l={l_nc}
M8 out vbnc s2 0 nmos45 w={w_nc} l={l_nc}
M9 s1 x 0 0 nmos45 w={w_nm} l={l_nm}
M10 s2 x 0 0 nmos45 w={w_nm} l={l_nm}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm, AC 1 on inp; DC-only servo with level shift
* (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
