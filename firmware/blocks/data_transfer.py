# data_transfer: OCPP block P: DataTransfer from the CSMS. This firmware has no vendor
# extensions, so every vendorId is unknown (P01.FR.06). MIT licence.


class DataTransfer:
    def __init__(self, router):
        router.on("DataTransfer", self.on_data_transfer)

    def on_data_transfer(self, req):
        return {"status": "UnknownVendorId"}
