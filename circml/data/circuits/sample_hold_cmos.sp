* sample_hold_cmos: track-and-hold with a CMOS transmission-gate switch, half-size dummy switches and a hold capacitor
.include ../models/ptm45.lib
.param wsn=1u wsp=2u lmin=45n winv_n=200n winv_p=400n ch=500f rs=200
Vdd vdd 0 DC 1.0
Vin vsrc 0 DC 0.5 SIN(0.5 0.3 20meg)
Rsrc vsrc in {rs}
* track while clk = 1, hold while clk = 0 (200 MS/s)
Vclk clk 0 PULSE(0 1.0 500p 20p 20p 2480p 5n)
Mpi clk_n clk vdd vdd pmos45 w={winv_p} l={lmin}
Mni clk_n clk 0 0 nmos45 w={winv_n} l={lmin}
* main CMOS switch
Mns in clk out 0 nmos45 w={wsn} l={lmin}
Mps in clk_n out vdd pmos45 w={wsp} l={lmin}
* half-size dummy switches (source and drain shorted) on the hold side, driven by the opposite phase
Mnd out clk_n out 0 nmos45 w={wsn/2} l={lmin}
Mpd out clk out vdd pmos45 w={wsp/2} l={lmin}
Ch out 0 {ch}
.end
