// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

interface IERC20Min {
    function approve(address spender, uint256 amount) external returns (bool);
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address account) external view returns (uint256);
}

interface IWETH is IERC20Min {
    function deposit() external payable;
    function withdraw(uint256 wad) external;
}

interface ILST is IERC20Min {
    function deposit() external payable returns (uint256);
    function redeem(uint256 shares) external returns (uint256);
}

interface IPoolMin {
    function flashLoanSimple(address receiver, address asset, uint256 amount, bytes calldata params, uint16 code)
        external;
    function supply(address asset, uint256 amount, address onBehalfOf, uint16 code) external;
    function withdraw(address asset, uint256 amount, address to) external returns (uint256);
    function borrow(address asset, uint256 amount, uint256 rateMode, uint16 code, address onBehalfOf) external;
    function repay(address asset, uint256 amount, uint256 rateMode, address onBehalfOf) external returns (uint256);
}

/// basiskit's flash-loan receiver (Aave v3 flashLoanSimple, IFlashLoanSimpleReceiver.executeOperation): the whole
/// leverage change of a staking position in one transaction of its owner.
///   lever: flash `amount` WETH, unwrap, stake `stake` ETH (the flash loan and the ETH sent) at the LST's rate, supply
///     the LST for the caller, borrow `amount` WETH for the caller (credit delegation), repay the flash loan and its
///     premium (from the ETH sent); what is left comes back as ETH.
///   delever: flash `amount` WETH, repay the caller's debt, take `shares` of the caller's aLST (approved), withdraw
///     and redeem them to ETH, repay the flash loan and its premium (the ETH sent helps); what is left goes back.
///     For an exit the flash amount exceeds the debt: Aave repays the debt to the wei, the rest comes back.
/// Anyone may call it for themselves only; it holds nothing between transactions.
contract FlashLever {
    IPoolMin public immutable pool;
    IWETH public immutable weth;
    address private caller;

    constructor(address pool_, address weth_) {
        pool = IPoolMin(pool_);
        weth = IWETH(weth_);
    }

    receive() external payable {}

    function lever(address lst, uint256 amount, uint256 stake) external payable {
        caller = msg.sender;
        pool.flashLoanSimple(address(this), address(weth), amount, abi.encode(true, lst, stake, uint256(0)), 0);
        caller = address(0);
        _refund();
    }

    function delever(address lst, address aLst, uint256 amount, uint256 shares) external payable {
        caller = msg.sender;
        pool.flashLoanSimple(address(this), address(weth), amount,
                             abi.encode(false, lst, shares, uint256(uint160(aLst))), 0);
        caller = address(0);
        _refund();
    }

    function executeOperation(address asset, uint256 amount, uint256 premium, address initiator,
                              bytes calldata params) external returns (bool) {
        require(msg.sender == address(pool) && initiator == address(this) && caller != address(0), "not a flash loan");
        (bool up, address lst, uint256 size, uint256 aLst) = abi.decode(params, (bool, address, uint256, uint256));
        if (up) {
            weth.withdraw(amount);
            uint256 shares = ILST(lst).deposit{value: size}();
            ILST(lst).approve(address(pool), shares);
            pool.supply(lst, shares, caller, 0);
            pool.borrow(asset, amount, 2, 0, caller);
        } else {
            weth.approve(address(pool), amount);
            pool.repay(asset, amount, 2, caller);  // more than the debt repays the debt (an exit's: to the wei)
            // the collateral leaves only once the debt it backed is repaid (Aave checks the HF on aToken transfers)
            IERC20Min(address(uint160(aLst))).transferFrom(caller, address(this), size);
            pool.withdraw(lst, type(uint256).max, address(this));
            ILST(lst).redeem(ILST(lst).balanceOf(address(this)));
        }
        weth.deposit{value: address(this).balance}();  // the ETH sent for the premium, and what the redeem paid
        weth.approve(address(pool), amount + premium);
        return true;
    }

    function _refund() internal {
        uint256 left = weth.balanceOf(address(this));
        if (left > 0) weth.withdraw(left);
        if (address(this).balance > 0) {
            (bool ok, ) = msg.sender.call{value: address(this).balance}("");
            require(ok, "refund failed");
        }
    }
}
